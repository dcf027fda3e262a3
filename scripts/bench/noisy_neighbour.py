#!/usr/bin/env python3
"""One tenant's CPU flood against another tenant's latency (issue 15, fair CPU).

Starts each given `omniforge` binary as a fresh server (SQLite in a temporary directory),
with tenant `quiet` (publishes `examples/hello`) and tenant `noisy` (publishes the spin-loop
guest as `noisy/spin`, which burns CPU until its 2 s time limit). Then measures quiet's
`hello` over one keep-alive connection, one request at a time: first with nothing else
running, then while noisy keeps `--flood` (16) spin invocations running at once, each
re-issued as soon as it ends. Prints requests, p50 and p99 per binary and phase, and the
ratio of the flooded p99 to the quiet p99 (DESIGN.md's target: at most 2). Binaries and
phases take turns round by round, so drifting machine load spreads over all of them.

    scripts/bench/noisy_neighbour.py HELLO_WASM SPIN_WASM NAME=BINARY[@CONFIG.toml] ...
        [--seconds S] [--rounds R] [--flood N]

The guests are built by the tests: ~/.cache/omniforge/target/omniforge-guests/
wasm32-wasip2/release/{hello,spin_loop}.wasm. Not part of CI; results go to
docs/performance.md.
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bootstrap(binary, env, tenant):
    out = subprocess.run([binary, "admin", "bootstrap", "--tenant", tenant, "--email",
                          f"owner@{tenant}.test"], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def publish(binary, env, url, key, project, wasm, out):
    subprocess.run([binary, "skill", "pack", project, "--component", wasm, "-o", out],
                   env=env, capture_output=True, check=True)
    subprocess.run([binary, "skill", "publish", out, "--server", url],
                   env=dict(env, OMNIFORGE_API_KEY=key), capture_output=True, check=True)


def start(binary, data, hello, spin, config=None):
    # Request rate limits far above the offered load: checked, never binding.
    env = dict(os.environ, OMNIFORGE_DATA_DIR=data, OMNIFORGE_LISTEN="127.0.0.1:0",
               OMNIFORGE_LOG="error", XDG_CONFIG_HOME=data,
               OMNIFORGE_RATE_PER_KEY_PER_SECOND="10000000",
               OMNIFORGE_RATE_PER_KEY_BURST="10000000",
               OMNIFORGE_RATE_PER_TENANT_PER_SECOND="10000000",
               OMNIFORGE_RATE_PER_TENANT_BURST="10000000")
    if config:
        env["OMNIFORGE_CONFIG"] = config
    quiet = bootstrap(binary, env, "quiet")
    noisy = bootstrap(binary, env, "noisy")
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}"
    publish(binary, env, url, quiet, os.path.join(ROOT, "example-skills/rust/hello"), hello,
            os.path.join(data, "hello.zip"))
    project = os.path.join(data, "spin")
    os.makedirs(project)
    with open(os.path.join(project, "omniforge.toml"), "w") as f:
        f.write('[package]\nname = "noisy/spin"\nversion = "1.0.0"\n'
                'description = "burns CPU"\nlicense = "MIT"\n[skill]\nworld = "tool"\n'
                'component = "skill.wasm"\n[limits]\ntimeout-ms = 2000\n')
    publish(binary, env, url, noisy, project, spin, os.path.join(data, "spin.zip"))
    return server, port, quiet, noisy


def invoke(conn, key, skill, payload):
    """One invocation; a connection the server closed is reopened and the request sent again
    (the time of the failed attempt is not counted)."""
    body = json.dumps({"input": payload})
    for attempt in range(2):
        started = time.perf_counter()
        try:
            conn.request("POST", f"/api/v1/skills/{skill}/invoke", body=body,
                         headers={"authorization": f"Bearer {key}",
                                  "content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            return response.status, time.perf_counter() - started
        except (http.client.HTTPException, OSError):
            conn.close()
            if attempt:
                raise


def flood(port, key, stop, statuses):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        status, _ = invoke(conn, key, "noisy/spin", {})
        statuses.append(status)


def measure(port, key, seconds, noisy_key=None, flood_n=0):
    stop = threading.Event()
    statuses = []
    threads = [threading.Thread(target=flood, args=(port, noisy_key, stop, statuses),
                                daemon=True)
               for _ in range(flood_n)]
    for t in threads:
        t.start()
    if threads:
        time.sleep(1.0)  # let the flood fill the server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples, errors = [], 0
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        status, took = invoke(conn, key, "examples/hello", {"name": "Ada"})
        if status == 200:
            samples.append(took)
        else:
            errors += 1
    stop.set()
    for t in threads:
        t.join()
    return samples, errors, statuses


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hello")
    parser.add_argument("spin")
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flood", type=int, default=16)
    args = parser.parse_args()
    servers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.binaries:
            name, binary = spec.split("=", 1)
            binary, _, config = binary.partition("@")
            data = os.path.join(tmp, name)
            os.makedirs(data)
            servers[name] = start(binary, data, args.hello, args.spin, config or None)
        results = {(name, phase): ([], 0) for name in servers for phase in ("quiet", "flooded")}
        flooded = {name: [] for name in servers}
        try:
            for _ in range(args.rounds):
                for name, (_, port, quiet, noisy) in servers.items():
                    for phase in ("quiet", "flooded"):
                        flood_n = args.flood if phase == "flooded" else 0
                        samples, errors, statuses = measure(port, quiet, args.seconds, noisy,
                                                            flood_n)
                        flooded[name] += statuses
                        kept, errs = results[(name, phase)]
                        results[(name, phase)] = (kept + samples, errs + errors)
        finally:
            for server, *_ in servers.values():
                server.terminate()
                server.wait()
    for name in servers:
        p99 = {}
        for phase in ("quiet", "flooded"):
            samples, errors = results[(name, phase)]
            p50 = statistics.median(samples) * 1000
            p99[phase] = percentile(samples, 0.99) * 1000
            print(f"{name:>10} {phase:>8}: {len(samples):6} requests, {errors} errors, "
                  f"p50 {p50:.2f} ms, p99 {p99[phase]:.2f} ms")
        print(f"{name:>10} p99 flooded / quiet: {p99['flooded'] / p99['quiet']:.1f}x")
        # The flood must really run: spin invocations that ran to their time limit (504).
        counts = {s: flooded[name].count(s) for s in sorted(set(flooded[name]))}
        print(f"{name:>10} flood invocations by status: {counts}")


if __name__ == "__main__":
    main()
