#!/usr/bin/env python3
"""Tenant A's key under tenant B's administration (issue 14, finding 2).

Starts each given `omniforge` binary as a fresh server (SQLite in a temporary directory),
bootstraps tenant A and creates tenant B, then measures A's `GET /api/v1/me` with an API key
from 4 keep-alive connections: first quiet, then while B's owner sends no-op role changes as
fast as one connection can. Prints requests, 429s, p50 and p99 per binary and phase.
Binaries take turns phase by phase, so drifting machine load spreads over both.

    scripts/bench/auth_churn.py NAME=BINARY [NAME=BINARY ...] [--requests N] [--rounds R]

Not part of CI; results go to docs/performance.md.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time


def start(binary, data):
    env = dict(os.environ, OMNIFORGE_DATA_DIR=data, OMNIFORGE_LISTEN="127.0.0.1:0",
               OMNIFORGE_LOG="error")
    out = subprocess.run([binary, "admin", "bootstrap", "--tenant", "acme", "--email",
                          "ada@acme.test"], env=env, capture_output=True, text=True, check=True)
    key = out.stdout.strip()
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline().strip()
    port = int(line.rsplit(":", 1)[1])
    return server, port, key


def call(conn, method, path, key, body=None):
    headers = {"authorization": f"Bearer {key}"}
    if body is not None:
        headers["content-type"] = "application/json"
        body = json.dumps(body)
    started = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, time.perf_counter() - started, data


def setup(port, key):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    status, _, data = call(conn, "POST", "/api/v1/tenants", key,
                           {"slug": "globex", "owner_email": "bo@globex.test"})
    assert status == 201, data
    created = json.loads(data)
    return created["owner_api_key"]["key"], created["owner"]["id"]


def measure(port, key, requests, churn=None):
    latencies, statuses, stop = [], [], threading.Event()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(requests):
            status, took, _ = call(conn, "GET", "/api/v1/me", key)
            latencies.append(took)
            statuses.append(status)

    def churner():
        other_key, other_owner = churn
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while not stop.is_set():
            try:
                call(conn, "PUT", f"/api/v1/users/{other_owner}/roles", other_key,
                     {"roles": ["owner"]})
            except (OSError, http.client.HTTPException):
                # A server that refuses before reading the body closes the connection.
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port)

    threads = [threading.Thread(target=client) for _ in range(4)]
    side = threading.Thread(target=churner) if churn else None
    if side:
        side.start()
        time.sleep(0.2)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    if side:
        side.join()
    latencies.sort()
    return {
        "requests": len(statuses),
        "429": statuses.count(429),
        "non_200": sum(1 for s in statuses if s != 200),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--requests", type=int, default=500, help="per connection and phase")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    servers = {}
    with tempfile.TemporaryDirectory() as work:
        try:
            for spec in args.binaries:
                name, binary = spec.split("=", 1)
                data = os.path.join(work, name)
                server, port, key = start(binary, data)
                servers[name] = (server, port, key, setup(port, key))
            results = {(name, phase): [] for name in servers for phase in ("quiet", "churn")}
            for _ in range(args.rounds):
                for phase in ("quiet", "churn"):
                    for name, (_, port, key, other) in servers.items():
                        churn = other if phase == "churn" else None
                        results[(name, phase)].append(measure(port, key, args.requests, churn))
            print(f"{'binary':<10} {'phase':<6} {'requests':>8} {'429':>6} {'p50 ms':>8} {'p99 ms':>8}")
            for (name, phase), runs in results.items():
                print(f"{name:<10} {phase:<6} {sum(r['requests'] for r in runs):>8} "
                      f"{sum(r['429'] for r in runs):>6} "
                      f"{statistics.median(r['p50_ms'] for r in runs):>8.2f} "
                      f"{statistics.median(r['p99_ms'] for r in runs):>8.2f}")
        finally:
            for server, *_ in servers.values():
                server.terminate()
                server.wait()


if __name__ == "__main__":
    main()
