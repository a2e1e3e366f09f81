"""Load test for `textlstm serve`: requests/s and latency percentiles, one run.

Starts `textlstm serve` on a free 127.0.0.1 port as a separate process (as a user
would), then `--clients` threads each send one-text POST /classify requests (SMS spam
test texts, round robin) until `--requests` have been answered. Latency is measured
client-side per request (connect + send + wait + read).

    .venv/bin/python bench/serve_load.py --checkpoint checkpoints/latest \
        [--clients 8] [--requests 2000] [--batch-wait-ms 5]

Prints one Markdown table row for docs/BENCHMARKS.md ("textlstm serve under load").
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    data = json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=120) as r:
        return json.loads(r.read())


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = parser.parse_args()

    texts = pq.read_table(REPO / "data/sms_spam/test.parquet", columns=["text"])["text"]
    texts = texts.to_pylist()
    port = free_port()
    script = Path(sys.executable).parent / "textlstm"
    server = subprocess.Popen(
        [
            str(script),
            "serve",
            "--checkpoint",
            args.checkpoint,
            "--port",
            str(port),
            "--batch-wait-ms",
            str(args.batch_wait_ms),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                get(base + "/health")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    sys.exit(f"server did not start: {server.stderr.read()}")
                time.sleep(0.1)
        post(base + "/classify", {"text": "warm up"})
        before = get(base + "/health")

        latencies, lock, counter = [], threading.Lock(), iter(range(args.requests))

        def client() -> None:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                start = time.perf_counter()
                post(base + "/classify", {"text": texts[n % len(texts)]})
                with lock:
                    latencies.append(time.perf_counter() - start)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        after = get(base + "/health")
    finally:
        server.terminate()
        server.wait(10)

    ms = np.array(latencies) * 1000
    batches = after["batches"] - before["batches"]
    print(
        "| clients | requests | batch wait | req/s | p50 ms | p99 ms | texts/batch | machine |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {args.clients} | {len(ms)} | {args.batch_wait_ms:g} ms | {len(ms) / elapsed:.0f} "
        f"| {np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} "
        f"| {(after['texts'] - before['texts']) / max(batches, 1):.1f} "
        f"| {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.0f} |"
    )


if __name__ == "__main__":
    main()
