#!/usr/bin/env python3
"""Orchestration overhead of agent runs (issue 18's targets).

Starts the given `omniforge` binary as a fresh server (SQLite in a temporary directory, or
the PostgreSQL database of `--database-url`), publishes `examples/hello`, and measures, in
rounds that take turns:

- `invoke`: one REST invoke of hello (its server-side cost is the baseline of a step);
- `seq10`: a run of a 10-step sequence of hello, from the run's start to its end as the
  server recorded them (`started_at_ms`, `finished_at_ms`); the per-step overhead is
  (run time − the guests' wall time, the run's `usage.wall_ms`) / 10: the journal writes,
  the scheduling, and the invocation service's work around the guest (target: p50 ≤ 2 ms);
- `par100` against `tasks100`: a run of one `parallel` step of 100 hello branches, against
  100 independent hello tasks submitted at once, first submission to last end (target:
  par100 ≤ 3 × tasks100).

    scripts/bench/orchestration.py BINARY HELLO_WASM [--database-url URL] [--rounds R]
        [--runs N]

HELLO_WASM is built by the tests: ~/.cache/omniforge/target/omniforge-guests/
wasm32-wasip2/release/hello.wasm. Not part of CI; results go to docs/performance.md.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Api:
    def __init__(self, port, key):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.key = key

    def call(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.key}"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, payload, headers)
        response = self.conn.getresponse()
        text = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {text[:300]!r}")
        return json.loads(text) if text else None

    def wait(self, task):
        while True:
            t = self.call("GET", f"/api/v1/tasks/{task}")
            if t["state"] in ("completed", "failed", "canceled"):
                if t["state"] != "completed":
                    raise RuntimeError(f"run {task} ended {t['state']}: {t.get('error')}")
                return t
            time.sleep(0.002)


def start(binary, data, hello, database_url):
    env = dict(os.environ, OMNIFORGE_DATA_DIR=data, OMNIFORGE_LISTEN="127.0.0.1:0",
               OMNIFORGE_LOG="error", XDG_CONFIG_HOME=data,
               OMNIFORGE_RATE_PER_KEY_PER_SECOND="10000000",
               OMNIFORGE_RATE_PER_KEY_BURST="10000000",
               OMNIFORGE_RATE_PER_TENANT_PER_SECOND="10000000",
               OMNIFORGE_RATE_PER_TENANT_BURST="10000000")
    if database_url:
        env["OMNIFORGE_DATABASE_URL"] = database_url
    key = subprocess.run([binary, "admin", "bootstrap", "--tenant", "bench", "--email",
                          "owner@bench.test"], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
    package = os.path.join(data, "hello.zip")
    subprocess.run([binary, "skill", "pack", os.path.join(ROOT, "example-skills/rust/hello"),
                    "--component", hello, "-o", package], env=env, capture_output=True,
                   check=True)
    subprocess.run([binary, "skill", "publish", package, "--server",
                    f"http://127.0.0.1:{port}"], env=dict(env, OMNIFORGE_API_KEY=key),
                   capture_output=True, check=True)
    return server, port, key


def step(i):
    return {"id": f"s{i}", "kind": "skill", "skill": "examples/hello",
            "input": {"name": f"step {i}"}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("hello")
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server, port, key = start(args.binary, data, args.hello, args.database_url)
        try:
            api = Api(port, key)
            seq = api.call("POST", "/api/v1/agents", {
                "name": "seq10", "workflow": {"steps": [step(i) for i in range(10)]}})["id"]
            par = api.call("POST", "/api/v1/agents", {
                "name": "par100", "workflow": {"steps": [{
                    "id": "p", "kind": "parallel", "branches": [step(i) for i in range(100)],
                }]}})["id"]
            invokes, seq_ms, overhead, par_ms, tasks_ms = [], [], [], [], []
            for _ in range(args.rounds):
                for _ in range(args.runs):
                    began = time.perf_counter()
                    api.call("POST", "/api/v1/skills/examples/hello/invoke",
                             {"input": {"name": "x"}})
                    invokes.append((time.perf_counter() - began) * 1000)
                for _ in range(args.runs):
                    run = api.call("POST", f"/api/v1/agents/{seq}/runs", {"input": {}})
                    ended = api.wait(run["id"])
                    took = ended["finished_at_ms"] - ended["started_at_ms"]
                    seq_ms.append(took)
                    overhead.append((took - ended["usage"]["wall_ms"]) / 10)
                run = api.call("POST", f"/api/v1/agents/{par}/runs", {"input": {}})
                ended = api.wait(run["id"])
                par_ms.append(ended["finished_at_ms"] - ended["created_at_ms"])
                ids = [api.call("POST", "/api/v1/tasks", {
                    "skill": "examples/hello", "input": {"name": str(i)}})["id"]
                    for i in range(100)]
                ended = [api.wait(i) for i in ids]
                first = min(t["created_at_ms"] for t in ended)
                tasks_ms.append(max(t["finished_at_ms"] for t in ended) - first)
            invoke_p50 = statistics.median(invokes)
            seq_p50 = statistics.median(seq_ms)
            print(f"invoke (client round trip): p50 {invoke_p50:.2f} ms")
            print(f"seq10 run: p50 {seq_p50:.1f} ms, p90 "
                  f"{statistics.quantiles(seq_ms, n=10)[-1]:.1f} ms")
            print(f"per-step overhead (run time minus guest time, / 10): p50 "
                  f"{statistics.median(overhead):.2f} ms")
            print(f"par100 run: median {statistics.median(par_ms):.0f} ms; 100 tasks: "
                  f"median {statistics.median(tasks_ms):.0f} ms; ratio "
                  f"{statistics.median(par_ms) / max(statistics.median(tasks_ms), 1):.2f}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
