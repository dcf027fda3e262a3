//! The `omniforge` binary as a user meets it: real example skills and hostile guests, real
//! packages, real files. One test binary with a module per command.

mod a2a;
mod agents;
mod author;
mod backup;
mod compose;
mod examples;
mod mcp;
mod memory;
mod metrics;
mod migrate;
mod packages;
mod publish;
mod readme;
mod replicas;
mod run;
mod runs;
mod secrets;
mod server;
mod server_cli;
mod services;
mod tasks;
mod traces;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

pub use omniforge_store::testing::record_skip;

/// Bootstraps tenant `acme` with owner `ada@acme.test` in `dir`'s data directory and returns
/// the owner's API key (what `omniforge admin bootstrap` prints).
pub fn bootstrap(dir: &Path) -> String {
    bootstrap_tenant(dir, "acme", "ada@acme.test")
}

/// Creates tenant `tenant` with owner `email` in `dir`'s database; the owner's API key.
pub fn bootstrap_tenant(dir: &Path, tenant: &str, email: &str) -> String {
    bootstrap_env(dir, tenant, email, &[])
}

/// [`bootstrap_tenant`] with `envs` set (`OMNIFORGE_DATABASE_URL` names another database).
pub fn bootstrap_env(dir: &Path, tenant: &str, email: &str, envs: &[(&str, &str)]) -> String {
    let out = omniforge_env(
        dir,
        &["admin", "bootstrap", "--tenant", tenant, "--email", email],
        envs,
    );
    ok(&out, &format!("bootstrap {tenant}")).trim().to_owned()
}

/// Runs `omniforge` with `args` in the current directory.
pub fn omniforge(args: &[&str]) -> Output {
    omniforge_in(Path::new("."), args)
}

/// Runs `omniforge` with `args` in `dir`.
pub fn omniforge_in(dir: &Path, args: &[&str]) -> Output {
    omniforge_env(dir, args, &[])
}

/// Runs `omniforge` with `args` in `dir` with extra environment variables.
pub fn omniforge_env(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let cache = std::env::temp_dir().join("omniforge-cli-tests-cache");
    Command::new(env!("CARGO_BIN_EXE_omniforge"))
        .args(args)
        .current_dir(dir)
        .env("OMNIFORGE_CACHE_DIR", cache)
        // The user's own client config must not leak into tests, nor their C compiler.
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("OMNIFORGE_CC")
        .envs(envs.iter().copied())
        .output()
        .expect("the omniforge binary runs")
}

/// stdout parsed as JSON; panics with both streams otherwise.
pub fn stdout(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout {text:?} is not JSON ({e}); stderr: {}",
            stderr(output)
        )
    })
}

/// stdout of a command that must have succeeded; panics with both streams otherwise.
pub fn ok(output: &Output, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{what}: stdout {} stderr {}",
        stdout_text(output),
        stderr(output)
    );
    stdout_text(output)
}

/// stdout as text.
pub fn stdout_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback HTTP server answering every request with `body`; returns its port.
pub fn serve(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}
