//! Shared helpers: a runtime per test binary, requests, and a loopback HTTP server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use omniforge_runtime::{
    Grants, InvocationContext, InvocationLimits, InvocationReport, InvocationRequest, LoadedSkill,
    Runtime, RuntimeConfig, TenantId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One runtime shared by the tests that need no special configuration, so each guest is
/// compiled once per test run.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("runtime builds"))
}

pub async fn load(runtime: &Runtime, path: &str) -> Arc<LoadedSkill> {
    runtime
        .load_file(path)
        .await
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

pub fn request(tenant: &str, input: &str) -> InvocationRequest {
    InvocationRequest {
        context: InvocationContext {
            tenant: TenantId::new(tenant),
            skill: "tests/guest".parse().unwrap(),
            version: "0.1.0".into(),
            request_id: format!("req-{tenant}"),
            trace_parent: None,
        },
        input: input.into(),
        limits: InvocationLimits::default(),
        grants: Grants::default(),
        callers: Vec::new(),
        cancel: None,
        task: None,
    }
}

/// Invokes the guest at `path` on the shared runtime with default limits and no grants.
pub async fn invoke(path: &str, input: &str) -> InvocationReport {
    let skill = load(runtime(), path).await;
    runtime().invoke(&skill, request("default", input)).await
}

pub fn json(output: &str) -> serde_json::Value {
    serde_json::from_str(output).unwrap_or_else(|e| panic!("output {output:?} is not JSON: {e}"))
}

/// The output of a successful report, parsed; panics with the report otherwise.
pub fn ok_output(report: &InvocationReport) -> serde_json::Value {
    match report.outcome.output() {
        Some(output) => json(output),
        None => panic!("expected ok, got {report:?}"),
    }
}

/// A loopback HTTP/1.1 server answering every request with `body`; counts requests and
/// keeps their heads.
pub struct TestServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestServer {
    pub async fn start(body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&heads);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    kept.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&request).into_owned());
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { addr, hits, heads }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The request line and headers of every request so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}
