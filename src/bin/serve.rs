//! `serve`: a tiny static file server on 127.0.0.1 (std::net only) for the browser demo. Serves
//! the repository root, so the page at /web/ fetches the WGSL from /shaders/ (one copy of every
//! kernel) and its model from /web/model/.
//!
//!     cargo run --release --bin serve            # then open http://127.0.0.1:8000/web/
//!     cargo run --release --bin serve -- --port 8080 --root .
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

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

fn respond(mut s: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut line = String::new();
    let mut r = BufReader::new(s.try_clone()?);
    r.read_line(&mut line)?;
    // Drain the headers.
    let mut h = String::new();
    while r.read_line(&mut h)? > 2 {
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let rel = PathBuf::from(path.trim_start_matches('/'));
    // Only plain components: nothing outside the root.
    let safe = rel.components().all(|c| matches!(c, Component::Normal(_)));
    let mut file = root.join(&rel);
    if file.is_dir() {
        if !path.ends_with('/') {
            let loc = format!("{path}/");
            return write!(s, "HTTP/1.1 301 Moved Permanently\r\nLocation: {loc}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        file = file.join("index.html");
    }
    match (method, safe, std::fs::read(&file)) {
        ("GET" | "HEAD", true, Ok(body)) => {
            write!(s, "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n", content_type(&file), body.len())?;
            if method == "GET" {
                s.write_all(&body)?;
            }
            Ok(())
        }
        _ => write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, def: &str| args.iter().position(|a| a == name).and_then(|k| args.get(k + 1)).cloned().unwrap_or_else(|| def.to_string());
    let port = opt("--port", "8000");
    let root = PathBuf::from(opt("--root", env!("CARGO_MANIFEST_DIR")));
    let listener = match TcpListener::bind(format!("127.0.0.1:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e} (choose another with --port)");
            std::process::exit(1);
        }
    };
    println!("serving {} at http://127.0.0.1:{port}/web/ (Ctrl-C stops)", root.display());
    for s in listener.incoming().flatten() {
        let root = root.clone();
        std::thread::spawn(move || {
            let _ = respond(s, &root);
        });
    }
}
