//! The server process as the machine sees it: a package upload goes to disk, never whole into
//! the server's memory (validation runs in a child process), and what a killed server was
//! writing is removed at its next start.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::bootstrap;
use crate::server::{Running, http, serve_in};

/// A field of `/proc/<pid>/status` in KiB (VmRSS: resident now; VmHWM: the peak so far).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Starts a chunked ZIP upload; the caller writes chunks (`chunk`) and ends it (`end`).
fn start_upload(port: u16, key: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /api/v1/skills HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
         authorization: Bearer {key}\r\ncontent-type: application/zip\r\n\
         transfer-encoding: chunked\r\n\r\n"
    )
    .unwrap();
    stream
}

fn chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    write!(stream, "{:x}\r\n", data.len())?;
    stream.write_all(data)?;
    stream.write_all(b"\r\n")
}

fn end(mut stream: TcpStream) -> (u16, String) {
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    (
        status,
        text.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned(),
    )
}

/// Incompressible bytes (a xorshift stream): nothing upstream can shrink them.
fn noise(len: usize, seed: &mut u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

#[test]
fn a_100_mb_upload_is_streamed_to_disk_and_never_held_in_the_servers_memory() {
    let dir = tempfile::tempdir().unwrap();
    let key = bootstrap(dir.path());
    // A limit above the upload, so all of it is received and validated.
    let server: Running = serve_in(dir.path(), &[("OMNIFORGE_MAX_PACKAGE_BYTES", "134217728")]);
    let pid = server.pid();
    // The key's first use runs argon2, which takes 19 MiB for a moment: not the upload's.
    assert_eq!(
        http(server.port, "GET", "/api/v1/me", Some(&key), None).0,
        200
    );
    // Resets the peak (VmHWM) to the current RSS, so the peak read later is the upload's.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let idle = status_kib(pid, "VmRSS");
    let mut upload = start_upload(server.port, &key);
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100 {
        chunk(&mut upload, &noise(1 << 20, &mut seed)).unwrap();
    }
    let (status, body) = end(upload);
    assert_eq!(status, 422, "100 MB of noise is not a package: {body}");
    assert!(body.contains("invalid-package"), "{body}");
    let peak = status_kib(pid, "VmHWM");
    let grew = peak.saturating_sub(idle);
    // Held whole, the upload alone would be 100 MiB (and a copy more); streamed, the server
    // grows by buffers (about 5 MiB measured).
    assert!(
        grew < 24 * 1024,
        "the server's peak grew by {grew} KiB over {idle} KiB idle for a 100 MB upload"
    );
    // Nothing of the refused upload stays on disk.
    let uploads = std::fs::read_dir(dir.path().join("omniforge-data/uploads")).unwrap();
    assert_eq!(uploads.count(), 0);

    // Past the limit, the upload is cut off while it streams.
    let mut upload = start_upload(server.port, &key);
    let mut sent = 0usize;
    for _ in 0..200 {
        if chunk(&mut upload, &noise(1 << 20, &mut seed)).is_err() {
            break;
        }
        sent += 1 << 20;
    }
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut upload, &mut text);
    assert!(
        text.starts_with("HTTP/1.1 413"),
        "{text:.200} after {sent} bytes"
    );
}

#[test]
fn files_a_killed_server_was_writing_are_removed_at_its_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = bootstrap(dir.path());
    let mut server = serve_in(dir.path(), &[]);
    let uploads = dir.path().join("omniforge-data/uploads");
    let mut upload = start_upload(server.port, &key);
    chunk(&mut upload, &noise(1 << 20, &mut 7)).unwrap();
    let mut spooled = 0;
    for _ in 0..600 {
        spooled = std::fs::read_dir(&uploads).map_or(0, |d| d.count());
        if spooled > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(spooled, 1, "the upload is being spooled");
    server.kill_hard();
    // A blob write cut short looks like this.
    let blob_tmp = dir.path().join("omniforge-data/blobs/tmp");
    std::fs::write(blob_tmp.join(".tmpHALF"), b"half a blob").unwrap();

    let server = serve_in(dir.path(), &[]);
    assert_eq!(http(server.port, "GET", "/readyz", None, None).0, 200);
    assert_eq!(
        std::fs::read_dir(&uploads).unwrap().count(),
        0,
        "uploads swept"
    );
    assert_eq!(
        std::fs::read_dir(&blob_tmp).unwrap().count(),
        0,
        "blob temporaries swept"
    );
}
