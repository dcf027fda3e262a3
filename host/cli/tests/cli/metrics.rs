//! `/metrics` as an operator meets it: a real Prometheus (Debian's package, unpacked by
//! `.ci/run`) scrapes a server's admin listener while REST invokes load it, and its query
//! API then answers invocation counts that match, per entry point, what was sent over REST,
//! MCP (the official Python SDK), A2A (the official Python SDK), tasks and agent runs;
//! `promtool check metrics` passes the exposition; without an admin listener `/metrics` is
//! on the main one; turned off, it is nowhere.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omniforge_test_programs as programs;
use serde_json::{Value, json};

use crate::examples::{python_package, toolchain};
use crate::server::http;
use crate::tasks::{Api, Backend, start};

const INSTALL: &str = "apt-get download prometheus && dpkg-deb -x prometheus_*.deb \
                       ~/.cache/omniforge/prometheus (.ci/run does it)";

/// Where `prometheus` and `promtool` are: `OMNIFORGE_TEST_PROMETHEUS`, else where `.ci/run`
/// unpacks Debian's package.
fn prometheus_bin(program: &str) -> PathBuf {
    let dir = std::env::var_os("OMNIFORGE_TEST_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/omniforge/prometheus/usr/bin")
        });
    dir.join(program)
}

/// A Prometheus scraping `target` every second, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(target: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
                 scrape_configs:\n  - job_name: omniforge\n    static_configs:\n\
                 \x20     - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(prometheus_bin("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prometheus starts");
        // It logs the address it bound (port 0 picks one) on stderr, as logfmt.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("prometheus logs where it listens")
                .unwrap();
            if line.contains("msg=\"Listening on\"")
                && let Some(address) = line.split("address=").nth(1)
            {
                let address = address.split_whitespace().next().unwrap();
                break address.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        // It answers queries once its storage is open.
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(port, "GET", "/-/ready", None, None).0 != 200 {
            assert!(Instant::now() < deadline, "prometheus never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// An instant query's result vector: each series' labels and value.
    async fn query(&self, http: &reqwest::Client, query: &str) -> Vec<(Value, f64)> {
        let answer: Value = http
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", query)])
            .send()
            .await
            .expect("prometheus answers")
            .json()
            .await
            .unwrap();
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| {
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (series["metric"].clone(), value)
            })
            .collect()
    }

    /// Polls `query` until its series, each named by `label`, are `expected` (at most 30 s).
    async fn wait_for(
        &self,
        http: &reqwest::Client,
        query: &str,
        label: &str,
        expected: &[(&str, f64)],
    ) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut want: Vec<(String, f64)> = expected
            .iter()
            .map(|(name, value)| ((*name).to_owned(), *value))
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        loop {
            let mut got: Vec<(String, f64)> = self
                .query(http, query)
                .await
                .into_iter()
                .map(|(labels, value)| (labels[label].as_str().unwrap_or("").to_owned(), value))
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: Prometheus has {got:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// `promtool check metrics` on `text`: it must pass without a complaint.
fn promtool_passes(text: &str) {
    let mut child = Command::new(prometheus_bin("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[test]
fn prometheus_counts_what_every_entry_point_invoked() {
    if !toolchain(prometheus_bin("prometheus").to_str().unwrap(), INSTALL)
        || !python_package("mcp", "pip install mcp==2.3.0")
        || !python_package("a2a.client", crate::a2a::INSTALL)
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, cli) = start(
        dir.path(),
        &Backend::Sqlite,
        &[("OMNIFORGE_ADMIN_LISTEN", "127.0.0.1:0")],
    );
    let admin = server.admin_port.expect("the admin listener's port");
    cli.publish_wasm(&cli.key, "acme/hello", programs::HELLO, "", "");
    let prometheus = Prometheus::start(admin);

    // Only the admin listener serves the metrics.
    assert_eq!(http(server.port, "GET", "/metrics", None, None).0, 404);
    let (status, text) = http(admin, "GET", "/metrics", None, None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(http(admin, "GET", "/readyz", None, None).0, 200);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(&cli.url, &cli.key);
    let scraper = reqwest::Client::new();
    let greeter = format!("{}/a2a/acme/greeter", cli.url);
    runtime.block_on(async {
        // The scrape target is up before the load starts.
        prometheus
            .wait_for(&scraper, "up", "job", &[("omniforge", 1.0)])
            .await;
        let hello = json!({"steps": [{"id": "greet", "kind": "skill", "skill": "acme/hello",
                                      "input": {"name": "${input.name}"}}],
                           "output": "${steps.greet.output}"});
        let agent = api
            .expect(
                "POST",
                "/api/v1/agents",
                Some(json!({"name": "greeter", "workflow": hello})),
                201,
            )
            .await;

        // REST under load while Prometheus scrapes: 4 clients × 25 invokes, and one
        // invoke of a skill nobody published.
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let api = api.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        api.expect(
                            "POST",
                            "/api/v1/skills/acme/hello/invoke",
                            Some(json!({"input": {"name": format!("c{c}-{i}")}})),
                            200,
                        )
                        .await;
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        api.expect(
            "POST",
            "/api/v1/skills/acme/made-up/invoke",
            Some(json!({"input": {}})),
            404,
        )
        .await;

        // Tasks, and agent runs started over REST.
        let mut ids = Vec::new();
        for i in 0..4 {
            let task = api
                .submit(json!({"skill": "acme/hello", "input": {"name": format!("t{i}")}}))
                .await;
            ids.push(task["id"].as_str().unwrap().to_owned());
        }
        let runs = format!("/api/v1/agents/{}/runs", agent["id"].as_str().unwrap());
        for name in ["r0", "r1"] {
            let run = api
                .expect("POST", &runs, Some(json!({"input": {"name": name}})), 202)
                .await;
            ids.push(run["id"].as_str().unwrap().to_owned());
        }
        for id in &ids {
            let task = api.ended(id, Duration::from_secs(30)).await;
            assert_eq!(task["state"], "completed", "{task}");
        }
    });

    // MCP and A2A, each through its official client.
    let called = crate::mcp::client(
        &cli.url,
        &cli.key,
        "2026-07-28",
        &json!([
            {"call": "acme.hello", "arguments": {"name": "m0"}},
            {"call": "acme.hello", "arguments": {"name": "m1"}},
            {"call": "acme.hello", "arguments": {"name": "m2"}},
        ]),
    );
    for result in &called[..3] {
        assert_eq!(result["is_error"], false, "{result}");
    }
    let sent = crate::a2a::client(
        &cli.key,
        &json!([
            {"op": "send", "url": greeter, "data": {"name": "a0"}},
            {"op": "send", "url": greeter, "data": {"name": "a1"}},
        ]),
    );
    for result in &sent {
        assert_eq!(
            result["events"][0]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
            "{result}"
        );
    }

    runtime.block_on(async {
        prometheus
            .wait_for(
                &scraper,
                "sum by (entry) (omniforge_invocations_total{outcome=\"ok\"})",
                "entry",
                &[
                    ("rest", 100.0),
                    ("task", 4.0),
                    ("workflow", 2.0),
                    ("mcp", 3.0),
                    ("a2a", 2.0),
                ],
            )
            .await;
        // The made-up skill is counted without its name.
        prometheus
            .wait_for(
                &scraper,
                "omniforge_invocations_total{outcome=\"unresolved\"}",
                "skill",
                &[("", 1.0)],
            )
            .await;
        prometheus
            .wait_for(
                &scraper,
                "sum by (status) (omniforge_http_requests_total{method=\"POST\", \
                 route=\"/api/v1/skills/{namespace}/{name}/invoke\"})",
                "status",
                &[("200", 100.0), ("404", 1.0)],
            )
            .await;
        prometheus
            .wait_for(
                &scraper,
                "omniforge_tasks{state=\"completed\"}",
                "state",
                &[("completed", 8.0)],
            )
            .await;
        prometheus
            .wait_for(
                &scraper,
                "omniforge_invocation_fuel_count{entry=\"rest\"}",
                "skill",
                &[("acme/hello", 100.0)],
            )
            .await;
    });

    let (status, text) = http(admin, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    for family in [
        "omniforge_tenants 1",
        "omniforge_skills 1",
        "omniforge_agents 1",
        "omniforge_task_queue_depth 0",
        "omniforge_compiles_total",
        "omniforge_refusals_total{kind=\"queue_full\"} 0",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    promtool_passes(&text);
}

#[test]
fn without_an_admin_listener_the_metrics_are_on_the_main_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _cli) = start(dir.path(), &Backend::Sqlite, &[]);
    assert_eq!(server.admin_port, None);
    let (status, text) = http(server.port, "GET", "/metrics", None, None);
    assert_eq!(status, 200, "{text}");
    // The request that asked is counted once it is answered: the next scrape shows it.
    let (_, text) = http(server.port, "GET", "/metrics", None, None);
    assert!(
        text.contains(
            "omniforge_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"
        ),
        "{text}"
    );
    if toolchain(prometheus_bin("promtool").to_str().unwrap(), INSTALL) {
        promtool_passes(&text);
    }
}

#[test]
fn metrics_turned_off_are_neither_counted_nor_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _cli) = start(
        dir.path(),
        &Backend::Sqlite,
        &[
            ("OMNIFORGE_METRICS", "off"),
            ("OMNIFORGE_ADMIN_LISTEN", "127.0.0.1:0"),
        ],
    );
    let admin = server.admin_port.expect("the admin listener's port");
    assert_eq!(http(server.port, "GET", "/metrics", None, None).0, 404);
    assert_eq!(http(admin, "GET", "/metrics", None, None).0, 404);
    assert_eq!(http(admin, "GET", "/healthz", None, None).0, 200);
}
