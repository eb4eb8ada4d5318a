//! The `serve` binary: flags through clap (no serving on --help or a typo), nothing outside its
//! root (links included), bounded requests, silent connections dropped, a connection limit.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVE: &str = env!("CARGO_BIN_EXE_serve");

/// Kills the server when the test ends, however it ends.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(root: &std::path::Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(SERVE)
        .args(["--port", &port.to_string(), "--root", root.to_str().unwrap(), "--timeout", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child, port)
}

/// The status line's code for `request` sent whole.
fn status(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).split_whitespace().nth(1).unwrap_or("none").to_string()
}

fn get(port: u16, path: &str) -> String {
    status(port, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
}

fn root() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmebm-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("root/web")).unwrap();
    std::fs::write(d.join("root/web/index.html"), "<p>demo</p>").unwrap();
    std::fs::write(d.join("root/web/a b.txt"), "spaced").unwrap();
    std::fs::write(d.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(d.join("secret.txt"), d.join("root/web/leak.txt")).unwrap();
    std::os::unix::fs::symlink(&d, d.join("root/web/up")).unwrap();
    d
}

#[test]
fn flags_go_through_clap_and_nothing_is_served_by_mistake() {
    let o = Command::new(SERVE).arg("--help").output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Usage: serve"));
    let o = Command::new(SERVE).arg("--prot").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: unexpected argument '--prot' found"));
    let o = Command::new(SERVE).args(["--root", "/nonexistent/web"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "error: --root /nonexistent/web: not a folder\n");
}

#[test]
fn only_files_under_the_root_with_bounded_requests_and_connections() {
    let d = root();
    let server = start(&d.join("root"));
    let p = server.1;
    assert_eq!(get(p, "/web/"), "200");
    assert_eq!(get(p, "/web"), "301");
    assert_eq!(get(p, "/web/leak.txt"), "404", "a link to a file outside the root");
    assert_eq!(get(p, "/web/up/secret.txt"), "404", "a link to a folder outside the root");
    assert_eq!(get(p, "/web/up"), "404", "not even a redirect for a folder outside the root");
    assert_eq!(get(p, "/web/a%20b.txt"), "200", "percent-encoded names");
    assert_eq!(get(p, "/web/%2e%2e/%2e%2e/secret.txt"), "404");
    assert_eq!(get(p, "/../secret.txt"), "404");
    assert_eq!(get(p, "/web/nothing.js"), "404");
    assert_eq!(status(p, b"POST /web/ HTTP/1.1\r\n\r\n"), "405");
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100_000));
    assert_eq!(status(p, huge.as_bytes()), "431");

    // A silent connection is dropped after --timeout (1 s).
    let mut idle = TcpStream::connect(("127.0.0.1", p)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let _ = idle.read(&mut buf);
    assert!(t.elapsed() < Duration::from_secs(5), "an idle connection was held {:?}", t.elapsed());

    // A client that trickles its request in is dropped by the same deadline.
    let mut slow = TcpStream::connect(("127.0.0.1", p)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let t = Instant::now();
    let mut dropped = false;
    for b in b"GET /web/ HTTP/1.1\r\nHost: a-very-slow-client\r\n".iter().cycle().take(200) {
        if slow.write_all(&[*b]).is_err() || matches!(slow.read(&mut buf), Ok(0)) {
            dropped = true;
            break;
        }
    }
    assert!(dropped && t.elapsed() < Duration::from_secs(5), "a trickling client was held {:?}", t.elapsed());

    // 32 silent connections at once: the next one is told to come back, not queued forever.
    let held: Vec<TcpStream> = (0..32).map(|_| TcpStream::connect(("127.0.0.1", p)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(p, "/web/"), "503");
    drop(held);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(p, "/web/"), "200", "served again once the silent ones were dropped");
    let _ = std::fs::remove_dir_all(&d);
}
