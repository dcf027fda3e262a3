//! Durable tasks against the real binary, on SQLite and on PostgreSQL: submitted over REST,
//! followed over Server-Sent Events, canceled, retried, deleted; recovered after `kill -9`;
//! shared by two servers on one database; fair between tenants; followed by `omniforge
//! task watch` across a restart.

mod crash;
mod lifecycle;
mod streams;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use omniforge_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::examples::ServerCli;
use crate::server::Running;

/// The database a test's servers use.
pub(crate) enum Backend {
    /// The default: a SQLite file in the data directory.
    Sqlite,
    /// A fresh PostgreSQL database of its own.
    Postgres(TestDatabase),
}

impl Backend {
    /// PostgreSQL when the test server is configured (`None`, skipped loudly, outside CI).
    pub(crate) fn postgres() -> Option<Self> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(omniforge_store::testing::postgres())
            .map(Self::Postgres)
    }

    /// The variables that point `omniforge` at this database.
    pub(crate) fn envs(&self) -> Vec<(&str, &str)> {
        match self {
            Self::Sqlite => Vec::new(),
            Self::Postgres(db) => vec![("OMNIFORGE_DATABASE_URL", db.url.as_str())],
        }
    }
}

/// A server with the task settings of these tests (short leases, frequent sweeps), on
/// `backend`, with `extra` variables.
pub(crate) fn start(
    dir: &std::path::Path,
    backend: &Backend,
    extra: &[(&str, &str)],
) -> (Running, ServerCli) {
    let mut envs = vec![
        ("OMNIFORGE_TASK_LEASE_MS", "1500"),
        ("OMNIFORGE_TASK_SWEEP_MS", "200"),
        ("OMNIFORGE_LOG_FORMAT", "json"),
    ];
    envs.extend(backend.envs());
    envs.extend_from_slice(extra);
    ServerCli::start_with(dir, &envs)
}

/// An HTTP client of one tenant.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// An answer: status, `Location`, JSON body (`Null` when empty).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: Value,
}

impl Api {
    pub(crate) fn new(base: &str, key: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    /// Sends `method path` with `body` and `headers`.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            location,
            body,
        }
    }

    /// `method path` answering `status`; its body.
    pub(crate) async fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let reply = self.call(method, path, body, &[]).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        reply.body
    }

    /// Submits a task (202); the task.
    pub(crate) async fn submit(&self, body: Value) -> Value {
        let reply = self.call("POST", "/api/v1/tasks", Some(body), &[]).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let id = reply.body["id"].as_str().unwrap();
        assert_eq!(
            reply.location.as_deref(),
            Some(&*format!("/api/v1/tasks/{id}"))
        );
        reply.body
    }

    pub(crate) async fn task(&self, id: &str) -> Value {
        self.expect("GET", &format!("/api/v1/tasks/{id}"), None, 200)
            .await
    }

    /// Polls task `id` until `done` holds for it (at most `within`); the task.
    pub(crate) async fn wait_for(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let task = self.task(id).await;
            if done(&task) {
                return task;
            }
            assert!(Instant::now() < deadline, "task never got there: {task}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until task `id` has ended; the task.
    pub(crate) async fn ended(&self, id: &str, within: Duration) -> Value {
        self.wait_for(id, within, |t| {
            matches!(
                t["state"].as_str(),
                Some("completed" | "failed" | "canceled")
            )
        })
        .await
    }

    /// Every event of task `id` (the JSON pages).
    pub(crate) async fn events(&self, id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or(0, |e: &Value| e["seq"].as_i64().unwrap());
            let path = format!("/api/v1/tasks/{id}/events?after={after}&limit=1000");
            let page = self.expect("GET", &path, None, 200).await;
            let items = page["items"].as_array().unwrap().clone();
            if items.is_empty() {
                return all;
            }
            all.extend(items);
        }
    }

    /// Task `id`'s event stream from after `last` (as `Last-Event-ID`), read until the
    /// server ends it or `take` events arrived (then the connection is dropped).
    pub(crate) async fn stream(
        &self,
        id: &str,
        last: Option<i64>,
        take: Option<usize>,
    ) -> Vec<Sse> {
        let mut request = self
            .http
            .get(format!("{}/api/v1/tasks/{id}/events", self.base))
            .bearer_auth(&self.key)
            .header("accept", "text/event-stream");
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        let mut body = response.bytes_stream();
        let (mut buffer, mut events, mut current) = (String::new(), Vec::new(), Sse::default());
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if current.id > 0 {
                        events.push(std::mem::take(&mut current));
                        if take.is_some_and(|n| events.len() >= n) {
                            return events;
                        }
                    }
                    continue;
                }
                let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                match field {
                    "id" => current.id = value.parse().unwrap(),
                    "event" => current.event = value.to_owned(),
                    "data" => current.data = serde_json::from_str(value).unwrap(),
                    _ => {}
                }
            }
        }
        events
    }
}

/// One Server-Sent Event.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sse {
    pub(crate) id: i64,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// Checks that `events` tell one consistent story: numbered 1, 2, … without gaps; every
/// attempt starts after the previous one ended or went back to the queue (never two at
/// once); one result; the last event ends the task. Returns the attempts that started.
pub(crate) fn check_history(task: &Value, events: &[Value]) -> u32 {
    let id = &task["id"];
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event["seq"],
            json!(i + 1),
            "{id}: events out of order: {events:?}"
        );
    }
    let (mut running, mut attempts, mut results) = (false, 0, 0);
    for event in events {
        let data = &event["data"];
        match (event["type"].as_str().unwrap(), data["state"].as_str()) {
            ("state", Some("working")) => {
                assert!(
                    !running,
                    "{id}: an attempt started while one ran: {events:?}"
                );
                running = true;
                attempts += 1;
                assert_eq!(data["attempt"], json!(attempts), "{id}: {events:?}");
            }
            ("state", Some("submitted")) => running = false,
            ("result", _) => {
                assert!(running, "{id}: a result without a run: {events:?}");
                results += 1;
            }
            _ => {}
        }
    }
    let last = events.last().unwrap();
    assert_eq!(last["type"], "state");
    assert_eq!(last["data"]["state"], task["state"], "{id}: {events:?}");
    assert!(results <= 1, "{id}: more than one result: {events:?}");
    if task["state"] == "completed" {
        assert_eq!(results, 1, "{id}: {events:?}");
    }
    assert_eq!(task["attempts"], json!(attempts), "{id}");
    attempts
}

/// The current time, unix ms.
pub(crate) fn now_ms() -> i64 {
    omniforge_store::now_ms()
}
