//! The durable-task benchmark's client (scripts/bench-tasks.sh runs it against a release
//! `omniforge serve`). Three measurements, chosen by the first argument:
//!
//! - `throughput URL KEY N C`: C connections submit N `examples/hello` tasks; prints the
//!   submit rate and the end-to-end rate, N over the time from the first submission to the
//!   last task's completion (read from the tasks' own timestamps).
//! - `latency URL KEY N`: on an idle queue, one task at a time: submit → `working`, from the
//!   task's events (server clock, ms); prints p50, p90, p99.
//! - `watchers URL KEY W SECS`: opens W Server-Sent Event streams on queued tasks (ten per
//!   task), prints `ready` once all are open, holds them SECS seconds while the script
//!   measures invokes, then prints how many stayed open.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let number = |i: usize| arg(i).parse::<u64>().expect("a number");
    let client = Client::new(&arg(1), &arg(2));
    match arg(0).as_str() {
        "throughput" => throughput(client, number(3), number(4)).await,
        "latency" => latency(client, number(3)).await,
        "watchers" => watchers(client, number(3), number(4)).await,
        other => panic!("unknown measurement {other:?}: throughput, latency or watchers"),
    }
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(base: &str, key: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(4096)
                .build()
                .unwrap(),
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn submit(&self, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/v1/tasks", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }
}

fn hello() -> Value {
    json!({"skill": "examples/hello", "input": {"name": "Ada"}})
}

async fn throughput(client: Client, n: u64, connections: u64) {
    let started = Instant::now();
    let mut submitters = Vec::new();
    for c in 0..connections {
        let client = client.clone();
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in (c..n).step_by(connections as usize) {
                ids.push(
                    client.submit(&hello()).await["id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for submitter in submitters {
        ids.extend(submitter.await.unwrap());
    }
    let submitted = started.elapsed();
    // Done when the newest task has completed and none is left queued or running.
    loop {
        let metrics = client.get("/api/v1/tasks/metrics").await;
        let open = metrics["states"]["submitted"].as_i64().unwrap()
            + metrics["states"]["working"].as_i64().unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut first_created, mut last_finished, mut failed, mut seen) = (i64::MAX, 0, 0, 0);
    let mut path = "/api/v1/tasks?limit=200".to_owned();
    loop {
        let page = client.get(&path).await;
        for task in page["items"].as_array().unwrap() {
            first_created = first_created.min(task["created_at_ms"].as_i64().unwrap());
            last_finished = last_finished.max(task["finished_at_ms"].as_i64().unwrap_or(0));
            failed += u64::from(task["state"] != "completed");
            seen += 1;
        }
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        path = format!("/api/v1/tasks?limit=200&cursor={cursor}");
    }
    assert_eq!(seen, ids.len(), "run it on a server with no other tasks");
    let span = Duration::from_millis((last_finished - first_created).max(1) as u64);
    println!(
        "tasks {n}, connections {connections}: submitted in {:.2} s ({:.0}/s); \
         submit → completed {:.0} tasks/s ({:.2} s); not completed: {failed}",
        submitted.as_secs_f64(),
        n as f64 / submitted.as_secs_f64(),
        n as f64 / span.as_secs_f64(),
        span.as_secs_f64(),
    );
}

async fn latency(client: Client, n: u64) {
    let mut waits = Vec::new();
    for _ in 0..n {
        let task = client.submit(&hello()).await;
        let id = task["id"].as_str().unwrap();
        let events = loop {
            let page = client.get(&format!("/api/v1/tasks/{id}/events")).await;
            if page["ended"] == true {
                break page["items"].as_array().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let at = |state: &str| {
            events
                .iter()
                .find(|e| e["data"]["state"] == state)
                .map(|e| e["at_ms"].as_i64().unwrap())
                .unwrap()
        };
        waits.push(at("working") - at("submitted"));
        // An idle queue between tasks.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waits.sort_unstable();
    let pick = |q: f64| waits[((q * waits.len() as f64).ceil() as usize).clamp(1, waits.len()) - 1];
    println!(
        "idle queue, {n} tasks: submit → working p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        pick(0.5),
        pick(0.9),
        pick(0.99),
        waits[waits.len() - 1]
    );
}

async fn watchers(client: Client, w: u64, secs: u64) {
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    let mut ids = Vec::new();
    for _ in 0..w.div_ceil(10) {
        let mut body = hello();
        body["not_before_ms"] = json!(later);
        ids.push(
            client.submit(&body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (opened, mut ready) = (tokio::sync::mpsc::channel::<()>(w as usize), 0);
    let mut streams = Vec::new();
    for i in 0..w {
        let (client, id, opened) = (
            client.clone(),
            ids[(i / 10) as usize].clone(),
            opened.0.clone(),
        );
        streams.push(tokio::spawn(async move {
            let response = client
                .http
                .get(format!("{}/api/v1/tasks/{id}/events", client.base))
                .bearer_auth(&client.key)
                .header("accept", "text/event-stream")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            opened.send(()).await.ok();
            let mut body = response.bytes_stream();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
            loop {
                tokio::select! {
                    chunk = body.next() => if chunk.is_none_or(|c| c.is_err()) { return false },
                    () = tokio::time::sleep_until(deadline) => return true,
                }
            }
        }));
    }
    let mut receiver = opened.1;
    while ready < w {
        receiver.recv().await.unwrap();
        ready += 1;
    }
    println!("ready: {w} streams open on {} queued tasks", ids.len());
    let mut open = 0;
    for stream in streams {
        open += u64::from(stream.await.unwrap());
    }
    println!("{open} of {w} streams stayed open for {secs} s");
}
