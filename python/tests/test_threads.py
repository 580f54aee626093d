"""Objects are shared between threads; results do not depend on interleaving.

Throughput scaling (1 vs 2 threads) is measured by python/bench/bench_scan.py,
not asserted here: timings are not a correctness property.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import warden

TEXTS = [
    f"user{i}@example.org called +44 20 7946 0958 about 👍 order {i}; ssn 536-90-4399"
    for i in range(64)
]


def test_concurrent_scans_match_sequential(scanner: warden.Scanner) -> None:
    expected = [scanner.scan(t) for t in TEXTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            assert list(pool.map(scanner.scan, TEXTS)) == expected


def test_concurrent_batches(scanner: warden.Scanner) -> None:
    expected = scanner.scan_batch(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: scanner.scan_batch(TEXTS), range(8)))
    assert all(r == expected for r in results)


def test_shared_vault_from_many_threads(scanner: warden.Scanner) -> None:
    vault = warden.Vault()
    with ThreadPoolExecutor(max_workers=4) as pool:
        redactions = list(pool.map(lambda t: scanner.redact(t, vault=vault), TEXTS))
    # Every value got exactly one token, whichever thread saw it first.
    emails = {e.text for r in redactions for e in r.entities if e.type == "EMAIL"}
    assert len([t for t, kind in vault.tokens() if kind == "EMAIL"]) == len(emails) == 64
    for text, r in zip(TEXTS, redactions):
        assert vault.restore(r.text) == text


def test_restore_from_many_threads(scanner: warden.Scanner) -> None:
    r = scanner.redact(" ".join(TEXTS))
    with ThreadPoolExecutor(max_workers=4) as pool:
        outs = list(pool.map(r.vault.restore, [r.text] * 32))
    assert set(outs) == {" ".join(TEXTS)}
