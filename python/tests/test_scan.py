"""Scanning: offsets are code points, and the module agrees with the CLI."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Iterable

import pytest

import warden

EMAIL = "jane.doe@acme.io"
PHONE = "+44 20 7946 0958"
SSN = "536-90-4399"
CARD = "4242 4242 4242 4242"

# (id, text, entity types expected in order). Non-ASCII cases put multi-byte
# characters, emoji sequences and combining marks *before and between* the
# entities, so byte and code point offsets differ.
CASES = [
    ("ascii", f"Reach me at {EMAIL} or {PHONE}; SSN {SSN}.", ["EMAIL", "PHONE", "US_SSN"]),
    ("emoji", f"📧 {EMAIL} 👍🏽 call {PHONE}", ["EMAIL", "PHONE"]),
    ("zwj_family", f"👨\u200d👩\u200d👧 family card {CARD} thanks", ["CREDIT_CARD"]),
    ("combining", f"Rene\u0301e Z\u0308oe mail {EMAIL}, ssn {SSN}", ["EMAIL", "US_SSN"]),
    ("cjk", f"请联系 {EMAIL}，电话 {PHONE}。", ["EMAIL", "PHONE"]),
    ("arabic_rtl", f"\u0631\u0627\u0633\u0644\u0646\u064a {EMAIL} \u0634\u0643\u0631\u0627", ["EMAIL"]),
    ("astral_between", f"{EMAIL} 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 {SSN}", ["EMAIL", "US_SSN"]),
    ("zero_width_inside", "write to jane.doe@ac\u200bme.io today", ["EMAIL"]),
    ("nothing", "The tide tables for Brest are out: 6.2 m at 14:05 on 2024-03-11.", []),
    ("empty", "", []),
]


@pytest.mark.parametrize(("name", "text", "types"), CASES, ids=[c[0] for c in CASES])
def test_entities_and_code_point_offsets(
    scanner: warden.Scanner, name: str, text: str, types: list[str]
) -> None:
    found = scanner.scan(text)
    assert [e.type for e in found] == types
    encoded = text.encode()
    for e in found:
        assert text[e.start : e.end] == e.text
        assert encoded[e.start_byte : e.end_byte].decode() == e.text
        assert 0.0 < e.score <= 1.0
        assert e.rule
    starts = [e.start for e in found]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in zip(found, found[1:]))


def test_obfuscated_email_is_redacted_whole(scanner: warden.Scanner) -> None:
    text = "write to jane.doe@ac\u200bme.io today"
    (e,) = scanner.scan(text)
    assert e.obfuscated
    assert e.text == "jane.doe@ac\u200bme.io"


def _cli_entities(warden_bin: Path, texts: list[str]) -> list[list[dict[str, object]]]:
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    proc = subprocess.run(
        [str(warden_bin), "scan", "--jsonl", "--no-injection"],
        input=lines.encode(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == list(range(len(texts)))
    return [o["entities"] for o in out]


KEYS = ("type", "start", "end", "start_byte", "end_byte", "rule", "obfuscated")


@pytest.mark.cli
def test_parity_with_cli_jsonl(scanner: warden.Scanner, warden_bin: Path) -> None:
    texts = [c[1] for c in CASES]
    cli = _cli_entities(warden_bin, texts)
    mine = scanner.scan_batch(texts)
    for text, theirs, ours in zip(texts, cli, mine):
        ours_d = [e.to_dict() for e in ours]
        assert [{k: e[k] for k in KEYS} for e in ours_d] == [
            {k: e[k] for k in KEYS} for e in theirs
        ], text
        for a, b in zip(ours_d, theirs):
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)
    # The table must exercise non-ASCII offsets, or this test proves little.
    assert any(e["start"] != e["start_byte"] for ents in cli for e in ents)


@pytest.mark.cli
@pytest.mark.parametrize("name", ["emoji", "combining", "zwj_family"])
def test_parity_with_cli_single_text(
    scanner: warden.Scanner, warden_bin: Path, name: str
) -> None:
    text = next(c[1] for c in CASES if c[0] == name)
    proc = subprocess.run(
        [str(warden_bin), "scan", "--no-injection", "-"],
        input=text.encode(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr.decode()
    theirs = json.loads(proc.stdout)["entities"]
    ours = [e.to_dict() for e in scanner.scan(text)]
    assert [{k: e[k] for k in KEYS} for e in ours] == [{k: e[k] for k in KEYS} for e in theirs]


def test_scan_batch_matches_scan(scanner: warden.Scanner) -> None:
    texts = [c[1] for c in CASES] * 7
    assert scanner.scan_batch(texts) == [scanner.scan(t) for t in texts]


@pytest.mark.parametrize(
    ("texts", "n"), [([], 0), ((), 0), (iter(["x", "y"]), 2), (["x"], 1), (("a", "b"), 2)]
)
def test_scan_batch_accepts_iterables(
    scanner: warden.Scanner, texts: Iterable[str], n: int
) -> None:
    assert scanner.scan_batch(texts) == [[]] * n


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda s: s.scan(123), TypeError),
        (lambda s: s.scan(b"bytes"), TypeError),
        (lambda s: s.scan(None), TypeError),
        (lambda s: s.scan_batch("a str"), TypeError),
        (lambda s: s.scan_batch(["ok", 3]), TypeError),
        (lambda s: s.scan_batch(5), TypeError),
    ],
)
def test_scan_rejects_non_text(scanner: warden.Scanner, call: object, exc: type) -> None:
    with pytest.raises(exc):
        call(scanner)  # type: ignore[operator]


def test_lone_surrogate_is_an_error_not_a_crash(scanner: warden.Scanner) -> None:
    with pytest.raises(UnicodeEncodeError):
        scanner.scan("bad \ud800 surrogate")


def test_entity_repr_hides_the_value(scanner: warden.Scanner) -> None:
    (e,) = scanner.scan(f"mail {EMAIL}")
    assert EMAIL not in repr(e)
    assert "EMAIL" in repr(e)


def test_entity_evidence_never_holds_the_value(scanner: warden.Scanner) -> None:
    for e in scanner.scan(f"card {CARD} and {EMAIL}"):
        assert e.evidence
        assert CARD not in json.dumps(e.evidence)
        assert EMAIL not in json.dumps(e.evidence)


def test_scan_releases_the_gil(scanner: warden.Scanner) -> None:
    """While one thread is inside a long scan, another runs Python code.

    If the scan held the GIL, the loop below could not run until the scan
    ended, and would count to (nearly) nothing.
    """
    text = ("lorem ipsum dolor sit amet " * 40 + f"{EMAIL} ") * 3000
    done = threading.Event()
    result: list[list[warden.Entity]] = []

    def work() -> None:
        result.append(scanner.scan(text))
        done.set()

    t = threading.Thread(target=work)
    t.start()
    spins = 0
    while not done.is_set():
        spins += 1
    t.join()
    assert len(result[0]) == 3000
    assert spins > 1000


def test_config_dict_changes_results() -> None:
    text = f"mail {EMAIL}, ssn {SSN}"
    assert [e.type for e in warden.Scanner(config={"disabled_entities": ["EMAIL"]}).scan(text)] == [
        "US_SSN"
    ]
    allow = warden.Scanner(config={"allow": [{"value": EMAIL}]})
    assert [e.type for e in allow.scan(text)] == ["US_SSN"]
    assert [e.type for e in warden.Scanner(config={"min_score": 1.01}).scan(text)] == []


def test_config_file_uses_the_scan_table(tmp_path: Path) -> None:
    cfg = tmp_path / "warden.toml"
    cfg.write_text('[scan]\ndisabled_entities = ["US_SSN"]\n\n[injection]\nlearned = true\n')
    types = [e.type for e in warden.Scanner(config=cfg).scan(f"mail {EMAIL}, ssn {SSN}")]
    assert types == ["EMAIL"]
    assert [e.type for e in warden.Scanner(config=str(cfg)).scan(f"ssn {SSN}")] == []


def test_scanner_is_shareable_and_has_rules(scanner: warden.Scanner) -> None:
    assert scanner.rule_count > 10
    assert "Scanner(rules=" in repr(scanner)


def test_packs_directory_matches_the_builtin_packs(scanner: warden.Scanner) -> None:
    root = Path(__file__).resolve().parents[2]
    from_dir = warden.Scanner(packs=root / "patterns")
    assert from_dir.rule_count == scanner.rule_count
    texts = [c[1] for c in CASES]
    assert from_dir.scan_batch(texts) == scanner.scan_batch(texts)
