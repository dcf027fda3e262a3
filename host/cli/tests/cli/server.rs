//! `omniforge admin bootstrap` and `omniforge serve` as an operator runs them: no
//! configuration, a key printed once, JSON logs without secrets, SIGTERM letting an
//! in-flight request finish, and bad configuration refused up front.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{omniforge_in, stderr, stdout_text};

pub struct Running {
    child: Child,
    pub port: u16,
    /// The admin listener's port, when `OMNIFORGE_ADMIN_LISTEN` was set.
    pub admin_port: Option<u16>,
    logs: Arc<Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends SIGTERM, as an operator stopping the service does, and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        self.child.wait().unwrap()
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill_hard(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

pub fn serve_in(dir: &Path, envs: &[(&str, &str)]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_omniforge"))
        .arg("serve")
        .current_dir(dir)
        .env("OMNIFORGE_LISTEN", "127.0.0.1:0")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("omniforge serve starts");
    let logs = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&logs);
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    let port = first
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .unwrap_or_else(|| {
            panic!(
                "unexpected first line {first:?}; logs: {}",
                logs.lock().unwrap()
            )
        })
        .parse()
        .unwrap();
    let admin_port = envs
        .iter()
        .any(|(name, _)| *name == "OMNIFORGE_ADMIN_LISTEN")
        .then(|| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix("admin listening on http://127.0.0.1:")
                .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
                .parse()
                .unwrap()
        });
    Running {
        child,
        port,
        admin_port,
        logs,
    }
}

/// One HTTP/1.1 request; returns the status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = bearer.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(stream)
}

fn read_response(mut stream: TcpStream) -> (u16, String) {
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The secret part of `ofk_<12 hex>_<secret>`. Not `rsplit_once('_')`: the base64url
/// secret may itself contain `_`, and a short tail would then turn up in logs by chance.
fn secret_of(key: &str) -> &str {
    let secret = &key["ofk_".len() + 12 + 1..];
    assert_eq!(secret.len(), 43, "{key}");
    secret
}

#[test]
fn bootstrap_then_serve_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = omniforge_in(
        dir.path(),
        &[
            "admin",
            "bootstrap",
            "--tenant",
            "acme",
            "--email",
            "ada@acme.test",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let key = stdout_text(&out).trim().to_owned();
    assert!(
        key.starts_with("ofk_") && !key.contains('\n'),
        "stdout is the key alone: {key:?}"
    );
    assert!(stderr(&out).contains("platform admin"), "{}", stderr(&out));
    assert!(dir.path().join("omniforge-data/omniforge.db").is_file());
    let again = omniforge_in(
        dir.path(),
        &[
            "admin",
            "bootstrap",
            "--tenant",
            "acme",
            "--email",
            "x@acme.test",
        ],
    );
    assert_ne!(again.status.code(), Some(0));
    assert!(stderr(&again).contains("taken"), "{}", stderr(&again));

    let server = serve_in(
        dir.path(),
        &[("OMNIFORGE_LOG", "debug"), ("OMNIFORGE_LOG_FORMAT", "json")],
    );
    let port = server.port;
    assert_eq!(http(port, "GET", "/readyz", None, None).0, 200);
    let (status, me) = http(port, "GET", "/api/v1/me", Some(&key), None);
    assert_eq!(status, 200, "{me}");
    let wrong = format!("{}{}", &key[..17], "B".repeat(43));
    assert_eq!(http(port, "GET", "/api/v1/me", Some(&wrong), None).0, 401);
    let (status, created) = http(
        port,
        "POST",
        "/api/v1/api-keys",
        Some(&key),
        Some(r#"{"name":"second"}"#),
    );
    assert_eq!(status, 201, "{created}");
    let second: serde_json::Value = serde_json::from_str(&created).unwrap();
    let second = second["key"].as_str().unwrap().to_owned();
    assert_eq!(http(port, "GET", "/api/v1/me", Some(&second), None).0, 200);

    // SIGTERM while a request is half sent: the request still completes.
    let body = r#"{"name":"during shutdown"}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /api/v1/api-keys HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let (status, answer) = read_response(stream);
    assert_eq!(status, 201, "the in-flight request finished: {answer}");
    let mut server = server;
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "serve exits cleanly on SIGTERM: {exit:?}");

    // Keys appear nowhere in the logs or the database files.
    let logs = server.logs.lock().unwrap().clone();
    assert!(
        logs.contains("\"request_id\""),
        "JSON logs with request ids: {logs}"
    );
    assert!(logs.contains("tenant_id"), "logs name the tenant: {logs}");
    for secret in [secret_of(&key), secret_of(&second), secret_of(&wrong)] {
        if let Some(line) = logs.lines().find(|l| l.contains(secret)) {
            panic!("a key reached the logs: {line}");
        }
        for file in ["omniforge.db", "omniforge.db-wal"] {
            let path = dir.path().join("omniforge-data").join(file);
            let bytes = std::fs::read(&path).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(secret),
                "a key is stored in plain text in {file}"
            );
        }
    }
}

#[test]
fn bad_configuration_is_refused_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_omniforge"))
        .arg("serve")
        .current_dir(dir.path())
        .env("OMNIFORGE_LISTEN", "everywhere")
        .env("OMNIFORGE_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let text = stderr(&out);
    assert!(
        text.contains("listen") && text.contains("OMNIFORGE_LOG_FORMAT"),
        "{text}"
    );

    let config = dir.path().join("omniforge.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[http]\nbody_limit = 5\n",
    )
    .unwrap();
    let out = omniforge_in(dir.path(), &["serve", "--config", config.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("body_limit"), "{}", stderr(&out));
}
