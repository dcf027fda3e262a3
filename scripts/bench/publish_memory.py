#!/usr/bin/env python3
"""Memory of publishing a large package (issue 14, finding 5).

Builds a valid package of about SIZE MB: the `hello` example's component with an
incompressible custom section appended (custom sections are valid anywhere in a component
and ignored when it runs), stored uncompressed. Starts `omniforge serve` (the binary given,
child-process validation and compiling on, as by default), measures the server's resident
memory idle, publishes the package with curl, and reports the server's peak (VmHWM) growth
and the peaks its validating and compiling child processes report in its log.

    scripts/bench/publish_memory.py BINARY HELLO_WASM [--size-mb 60]

Not part of CI; results go to docs/performance.md.
"""

import argparse
import io
import json
import os
import random
import re
import subprocess
import tempfile
import time
import zipfile


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def with_custom_section(wasm, size):
    name = b"omniforge-bench-padding"
    payload = leb128(len(name)) + name + random.Random(1).randbytes(size)
    return wasm + b"\x00" + leb128(len(payload)) + payload


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("hello_wasm")
    parser.add_argument("--size-mb", type=int, default=60)
    args = parser.parse_args()
    wasm = with_custom_section(open(args.hello_wasm, "rb").read(), args.size_mb << 20)
    manifest = ('[package]\nname = "bench/big"\nversion = "1.0.0"\n'
                'description = "A large package"\nlicense = "Apache-2.0"\n\n'
                '[skill]\nworld = "skill"\n')
    with tempfile.TemporaryDirectory() as work:
        package = os.path.join(work, "big.zip")
        with zipfile.ZipFile(package, "w", zipfile.ZIP_STORED) as z:
            z.writestr("omniforge.toml", manifest)
            z.writestr("skill.wasm", wasm)
        size = os.path.getsize(package)
        env = dict(os.environ, OMNIFORGE_DATA_DIR=os.path.join(work, "data"),
                   OMNIFORGE_LISTEN="127.0.0.1:0", OMNIFORGE_LOG="info",
                   OMNIFORGE_MAX_PACKAGE_BYTES=str(128 << 20))
        key = subprocess.run([args.binary, "admin", "bootstrap", "--tenant", "acme", "--email",
                              "ada@acme.test"], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        log = open(os.path.join(work, "serve.log"), "w+")
        server = subprocess.Popen([args.binary, "serve"], env=env, stdout=subprocess.PIPE,
                                  stderr=log, text=True)
        try:
            port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
            # The key's first use runs argon2 (19 MiB for a moment): not part of publishing.
            subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", f"Authorization: Bearer {key}",
                            f"http://127.0.0.1:{port}/api/v1/me"], check=True)
            time.sleep(1)
            # Resets the peak (VmHWM) to the current RSS, so the peak read after the publish
            # is the publish's own (Linux; needs to own the process).
            with open(f"/proc/{server.pid}/clear_refs", "w") as f:
                f.write("5")
            idle_rss = status_kib(server.pid, "VmRSS")
            idle_peak = status_kib(server.pid, "VmHWM")
            started = time.perf_counter()
            out = subprocess.run(["curl", "-s", "-H", f"Authorization: Bearer {key}",
                                  "-H", "content-type: application/zip", "--data-binary",
                                  f"@{package}", f"http://127.0.0.1:{port}/api/v1/skills"],
                                 capture_output=True, text=True, check=True)
            took = time.perf_counter() - started
            answer = json.loads(out.stdout)
            assert answer.get("name") == "bench/big", answer
            time.sleep(1)
            peak = status_kib(server.pid, "VmHWM")
            log.seek(0)
            text = log.read()
            children = re.findall(r"(validated|compiled) [^=\n]*peak_rss_mib=(\d+)", text)
            print(f"package {size / 1e6:.1f} MB, published in {took:.1f} s, "
                  f"compiled: {answer.get('compiled')}")
            print(f"server: idle RSS {idle_rss / 1024:.1f} MiB (peak reset to {idle_peak / 1024:.1f}),"
                  f" peak while publishing {peak / 1024:.1f} MiB: grew {(peak - idle_rss) / 1024:.1f}"
                  f" MiB")
            for what, mib in children:
                print(f"child that {what}: peak {mib} MiB")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
