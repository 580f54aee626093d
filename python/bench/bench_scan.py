"""Throughput of the Python module: scan_batch vs a loop over scan vs the CLI.

Usage (build the extension in release mode first, e.g.
``WARDEN_PY_RELEASE=1 scripts/test-python`` or ``maturin develop --release``)::

    .venv/bin/python python/bench/bench_scan.py [--texts 20000] [--bin target/release/warden]

The corpus is seeded prompt-like text with sparse PII (about one entity per
400 bytes, some of it non-ASCII). Every method must report the same number of
entities, so a fast-but-wrong path cannot look good. Reports texts/s and MB/s,
plus the speed-up of two Python threads over one (the GIL is released while
scanning, so two threads should approach 2x on two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import warden

ROOT = Path(__file__).resolve().parents[2]

WORDS = (
    "please summarise the ticket below and draft a polite reply to the customer about "
    "their refund order delivery invoice account password reset shipping address "
    "the model should answer in a friendly tone and keep it short thanks team"
).split()
UNICODE_WORDS = ["café", "naïve", "Zürich", "東京", "👍", "données", "réponse", "🙂"]


def pii(rng: random.Random) -> str:
    n = rng.randrange(10_000)
    return rng.choice(
        [
            f"user{n}@example.org",
            f"+44 20 7946 {n:04d}",
            "4242 4242 4242 4242",
            "536-90-4399",
            f"192.168.{n % 256}.{(n // 256) % 256}",
            "GB82 WEST 1234 5698 7654 32",
        ]
    )


def corpus(n: int, size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts: list[str] = []
        length = 0
        while length < size:
            if rng.random() < 0.15:
                w = rng.choice(UNICODE_WORDS)
            else:
                w = rng.choice(WORDS)
            parts.append(w)
            length += len(w) + 1
            if rng.random() < 1 / 60:  # ~1 entity per ~400 bytes
                p = pii(rng)
                parts.append(p)
                length += len(p) + 1
        texts.append(" ".join(parts))
    return texts


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    best = float("inf")
    count = -1
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t0)
    return best, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=512, help="approximate bytes per text")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bin", type=Path, default=None, help="warden binary (default: target/release, else debug)")
    args = ap.parse_args()

    texts = corpus(args.texts, args.size, args.seed)
    total_bytes = sum(len(t.encode()) for t in texts)
    scanner = warden.Scanner()
    scanner.scan(texts[0])  # warm up lazily initialised state

    results: list[tuple[str, float, int]] = []

    def loop() -> int:
        return sum(len(scanner.scan(t)) for t in texts)

    def batch() -> int:
        return sum(len(r) for r in scanner.scan_batch(texts))

    def threads(k: int) -> Callable[[], int]:
        def run() -> int:
            counts = [0] * k
            shards = [texts[i::k] for i in range(k)]

            def work(i: int) -> None:
                counts[i] = sum(len(scanner.scan(t)) for t in shards[i])

            ts = [threading.Thread(target=work, args=(i,)) for i in range(k)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return sum(counts)

        return run

    for name, fn in [
        ("python loop over scan() (1 thread)", loop),
        ("scan() from 2 threads", threads(2)),
        ("scan_batch() (all cores)", batch),
    ]:
        secs, count = timed(fn, args.repeat)
        results.append((name, secs, count))

    binary = args.bin
    if binary is None:
        rel = ROOT / "target" / "release" / "warden"
        binary = rel if rel.exists() else ROOT / "target" / "debug" / "warden"
    if binary.exists():
        payload = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)).encode()

        def cli() -> int:
            proc = subprocess.run(
                [str(binary), "scan", "--jsonl", "--no-injection"],
                input=payload,
                capture_output=True,
                check=False,
            )
            if proc.returncode not in (0, 1):
                sys.exit(f"warden scan failed: {proc.stderr.decode()[:500]}")
            return sum(len(json.loads(line)["entities"]) for line in proc.stdout.splitlines())

        secs, count = timed(cli, args.repeat)
        results.append((f"`{binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary} scan --jsonl` (subprocess, incl. JSON)", secs, count))
    else:
        print(f"(no CLI binary at {binary}; skipping the CLI row)")

    counts = {c for _, _, c in results}
    if len(counts) != 1:
        sys.exit(f"methods disagree on the number of entities: {results}")

    print(
        f"corpus: {len(texts)} texts, {total_bytes / 1e6:.1f} MB, {counts.pop()} entities; "
        f"cores: {os.cpu_count()}; best of {args.repeat}; warden {warden.__version__}"
    )
    print(f"{'method':<62} {'texts/s':>12} {'MB/s':>9}")
    for name, secs, _ in results:
        print(f"{name:<62} {len(texts) / secs:>12,.0f} {total_bytes / secs / 1e6:>9.1f}")
    one = results[0][1]
    two = results[1][1]
    print(f"2 threads vs 1 thread, {args.size}-byte texts: {one / two:.2f}x")

    # The same with large texts, where the GIL-held part of each call (argument
    # and result conversion) is negligible: this isolates the GIL release.
    # CPU/wall > 1 shows both threads ran Rust at the same time, even when
    # other processes on the machine keep the wall-clock speed-up down.
    big = " ".join(texts[: max(1, len(texts) // 10)])
    per_thread = 4

    def big_scans(k: int) -> tuple[float, float]:
        def work() -> None:
            for _ in range(per_thread):
                scanner.scan(big)

        ts = [threading.Thread(target=work) for _ in range(k)]
        w0, c0 = time.perf_counter(), time.process_time()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.perf_counter() - w0, time.process_time() - c0

    best1 = min(big_scans(1)[0] for _ in range(args.repeat))
    runs2 = [big_scans(2) for _ in range(args.repeat)]
    wall2, cpu2 = min(runs2)
    print(
        f"2 threads vs 1 thread, {len(big.encode()) / 1e6:.1f} MB texts: "
        f"{2 * best1 / wall2:.2f}x (CPU/wall during the 2-thread run: {cpu2 / wall2:.2f}; "
        f"1-min load average: {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
