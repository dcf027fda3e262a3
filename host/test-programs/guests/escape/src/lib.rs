//! Tries to reach outside the sandbox through the WASI base interfaces (files, environment,
//! arguments, sockets, current directory) and reports what it found. Every field should
//! come back empty or as an error.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

struct Escape;

fn attempt<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) -> serde_json::Value {
    match result {
        Ok(value) => serde_json::json!({ "ok": format!("{value:?}") }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}

impl Guest for Escape {
    fn invoke(_ctx: Invocation, input: String) -> Result<String, SkillError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| SkillError::InvalidInput(e.to_string()))?;
        let connect_to = input
            .get("connect")
            .and_then(|v| v.as_str())
            .unwrap_or("127.0.0.1:80");
        let report = serde_json::json!({
            "env": std::env::vars().collect::<Vec<_>>(),
            "args": std::env::args().collect::<Vec<_>>(),
            "read_root": attempt(std::fs::read_dir("/").map(|d| d.count())),
            "read_passwd": attempt(std::fs::read_to_string("/etc/passwd")),
            "write_file": attempt(std::fs::write("escape.txt", b"x")),
            "cwd": attempt(std::env::current_dir()),
            "tcp_connect": attempt(std::net::TcpStream::connect(connect_to)),
            "tcp_listen": attempt(std::net::TcpListener::bind("127.0.0.1:0")),
            "udp_bind": attempt(std::net::UdpSocket::bind("127.0.0.1:0")),
            "dns": attempt(std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|a| a.count())),
        });
        Ok(report.to_string())
    }
}

export!(Escape);
