//! `serve`: a tiny static file server on 127.0.0.1 (std::net only) for the browser demo. Serves
//! the repository root, so the page at /web/ fetches the WGSL from /shaders/ (one copy of every
//! kernel) and its model from /web/model/.
//!
//!     cargo run --release --bin serve            # then open http://127.0.0.1:8000/web/
//!     cargo run --release --bin serve -- --port 8080 --root .
//!
//! It only ever reads files under the root (symbolic links that lead out are refused), reads at
//! most `MAX_REQUEST` bytes of a request, drops a connection whose request has not arrived whole
//! within `--timeout` seconds, and serves at most `MAX_CONNECTIONS` at once (503 beyond).
use clap::Parser;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request line and headers together.
const MAX_REQUEST: u64 = 16 * 1024;
const MAX_CONNECTIONS: usize = 32;

#[derive(Parser, Debug)]
#[command(about = "Serve the repository's files to the browser demo on 127.0.0.1 (GET and HEAD only)")]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Folder to serve; default: the repository this binary was built from.
    #[arg(long, default_value = env!("CARGO_MANIFEST_DIR"))]
    root: PathBuf,
    /// Seconds a connection may stay silent before it is dropped.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "wgsl" | "md" | "toml" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "css" => "text/css",
        _ => "application/octet-stream",
    }
}

/// What a request path names under `root` (canonical): a file, a folder to redirect to with a
/// slash, or nothing (missing, not plain components, or a link that leads out of the root).
enum Target {
    File(PathBuf),
    Folder,
    Nothing,
}

fn resolve(root: &Path, path: &str) -> Target {
    let Some(path) = percent_decode(path) else { return Target::Nothing };
    let rel = PathBuf::from(path.trim_start_matches('/'));
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Target::Nothing;
    }
    let Ok(mut file) = std::fs::canonicalize(root.join(&rel)) else { return Target::Nothing };
    if !file.starts_with(root) {
        return Target::Nothing;
    }
    if file.is_dir() {
        if !path.ends_with('/') {
            return Target::Folder;
        }
        match std::fs::canonicalize(file.join("index.html")) {
            Ok(f) if f.starts_with(root) => file = f,
            _ => return Target::Nothing,
        }
    }
    if file.is_file() { Target::File(file) } else { Target::Nothing }
}

/// `%XX` escapes decoded; `None` for a bad escape, a NUL or text that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.contains('\0'))
}

/// A stream whose reads all end by `deadline`: a client that trickles its request in keeps its
/// connection no longer than one whose request never comes.
struct Deadline<'a> {
    s: &'a TcpStream,
    deadline: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.s.set_read_timeout(Some(left))?;
        (&mut &*self.s).read(buf)
    }
}

fn status(s: &mut TcpStream, code: &str, extra: &str) -> std::io::Result<()> {
    write!(s, "HTTP/1.1 {code}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
}

fn respond(mut s: TcpStream, root: &Path, timeout: Duration) -> std::io::Result<()> {
    s.set_write_timeout(Some(timeout))?;
    let mut r = BufReader::new(Deadline { s: &s, deadline: Instant::now() + timeout }.take(MAX_REQUEST));
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(()); // connected and closed: nothing to answer
    }
    // The headers, to their blank line; the request is refused when it does not end in the limit.
    let mut ended = false;
    let mut h = String::new();
    while r.read_line(&mut h)? > 0 {
        if h == "\r\n" || h == "\n" {
            ended = true;
            break;
        }
        h.clear();
    }
    if !ended {
        return status(&mut s, "431 Request Header Fields Too Large", "");
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    if method != "GET" && method != "HEAD" {
        return status(&mut s, "405 Method Not Allowed", "Allow: GET, HEAD\r\n");
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    match resolve(root, path) {
        Target::Folder => status(&mut s, "301 Moved Permanently", &format!("Location: {path}/\r\n")),
        Target::Nothing => status(&mut s, "404 Not Found", ""),
        Target::File(file) => {
            let body = if method == "GET" { std::fs::read(&file) } else { Ok(Vec::new()) };
            match (body, std::fs::metadata(&file)) {
                (Ok(body), Ok(meta)) => {
                    write!(s, "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n", content_type(&file), meta.len())?;
                    s.write_all(&body)
                }
                _ => status(&mut s, "404 Not Found", ""),
            }
        }
    }
}

/// One of the `MAX_CONNECTIONS` slots, given back on drop (a panicking thread included).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        open.fetch_add(1, Ordering::SeqCst);
        Slot(open.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn main() {
    let a = Args::parse();
    let root = match std::fs::canonicalize(&a.root) {
        Ok(r) if r.is_dir() => r,
        _ => {
            eprintln!("error: --root {}: not a folder", a.root.display());
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", a.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{}: {e} (choose another with --port)", a.port);
            std::process::exit(1);
        }
    };
    println!("serving {} at http://127.0.0.1:{}/web/ (Ctrl-C stops)", root.display(), a.port);
    let timeout = Duration::from_secs(a.timeout);
    let open = Arc::new(AtomicUsize::new(0));
    for s in listener.incoming().flatten() {
        let busy = |mut s: TcpStream| {
            let _ = s.set_write_timeout(Some(timeout));
            let _ = status(&mut s, "503 Service Unavailable", "Retry-After: 1\r\n");
        };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            busy(s);
            continue;
        }
        let slot = Slot::take(&open);
        let root = root.clone();
        let Ok(s2) = s.try_clone() else { continue };
        let spawned = std::thread::Builder::new().spawn(move || {
            let _slot = slot; // freed when the thread ends, however it ends
            let _ = respond(s2, &root, timeout);
        });
        if spawned.is_err() {
            busy(s);
        }
    }
}
