//! The load benchmark's baseline (scripts/bench-invoke.sh): a bare axum handler answering
//! what `examples/hello` answers, with no auth, sandbox or accounting, so the benchmark can
//! report how much of the bare HTTP stack's throughput an invocation keeps.

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

async fn hello(Json(body): Json<Value>) -> Json<Value> {
    let name = body["input"]["name"].as_str().unwrap_or("world");
    Json(json!({ "output": { "greeting": format!("Hello, {name}!") } }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, axum::Router::new().route("/invoke", post(hello))).await
}
