"""Redaction, vaults and restoring: the round trip must be exact."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import warden

EMAIL = "jane.doe@acme.io"
PHONE = "+44 20 7946 0958"
SSN = "536-90-4399"
CARD = "4242 4242 4242 4242"
KEY = "a-team-key-of-24-bytes!!"

TEXTS = [
    f"Reach me at {EMAIL} or {PHONE}; SSN {SSN}.",
    f"📧 {EMAIL} 👍🏽 and again {EMAIL}, card {CARD}",
    f"Rene\u0301e <{EMAIL}> said <EMAIL_1> is not a token of ours",
    "nothing to hide here",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_placeholder_round_trip(scanner: warden.Scanner, text: str) -> None:
    r = scanner.redact(text)
    for e in r.entities:
        assert e.text not in r.text
    assert r.vault.restore(r.text) == text
    assert len(r.vault) == len({(e.type, e.text) for e in r.entities})


def test_same_value_same_token_within_a_call(scanner: warden.Scanner) -> None:
    r = scanner.redact(f"{EMAIL} wrote to {EMAIL} and {PHONE}")
    assert r.text == "<EMAIL_1> wrote to <EMAIL_1> and <PHONE_1>"
    assert r.vault.get("<EMAIL_1>") == EMAIL
    assert "<EMAIL_1>" in r.vault
    assert "<EMAIL_2>" not in r.vault
    assert r.vault.tokens() == [("<EMAIL_1>", "EMAIL"), ("<PHONE_1>", "PHONE")]


def test_entities_refer_to_the_original_text(scanner: warden.Scanner) -> None:
    text = f"👍 {EMAIL}"
    r = scanner.redact(text)
    (e,) = r.entities
    assert text[e.start : e.end] == EMAIL


@pytest.mark.parametrize(
    ("strategy", "check"),
    [
        ("placeholder", lambda out: out == "card <CREDIT_CARD_1>."),
        ("mask", lambda out: out.endswith("4242.") and CARD not in out and "*" in out),
        ("hash", lambda out: re.fullmatch(r"card <CREDIT_CARD#[0-9a-f]{8,}>\.", out)),
        ("remove", lambda out: out == "card ."),
    ],
)
def test_strategies(scanner: warden.Scanner, strategy: str, check: object) -> None:
    out = scanner.redact(f"card {CARD}.", strategy=strategy).text  # type: ignore[arg-type]
    assert check(out), out  # type: ignore[operator]


def test_hash_with_key_is_stable_across_calls(scanner: warden.Scanner) -> None:
    a = scanner.redact(f"ssn {SSN}", strategy="hash", key="team-secret-0123456789").text
    b = scanner.redact(f"again {SSN}", strategy="hash", key=b"team-secret-0123456789").text
    c = scanner.redact(f"ssn {SSN}", strategy="hash", key="other-secret-0123456789").text
    assert a.split()[-1] == b.split()[-1]
    assert a != c


def test_keyed_vaults_agree_across_calls(scanner: warden.Scanner) -> None:
    one = scanner.redact(f"turn 1: {EMAIL}", key=KEY)
    two = scanner.redact(f"turn 2: {PHONE} {EMAIL}", key=KEY)
    assert one.vault.keyed
    token = one.text.split()[-1]
    assert token in two.text
    assert len(token) == len("<EMAIL_12345678>")


def test_shared_vault_across_turns(scanner: warden.Scanner) -> None:
    vault = warden.Vault()
    first = scanner.redact(f"I am {EMAIL}", vault=vault)
    second = scanner.redact(f"Still {EMAIL}, phone {PHONE}", vault=vault)
    assert first.vault is vault and second.vault is vault
    assert second.text == "Still <EMAIL_1>, phone <PHONE_1>"
    assert vault.restore(first.text + " / " + second.text) == (
        f"I am {EMAIL} / Still {EMAIL}, phone {PHONE}"
    )


def test_unknown_tokens_are_left_alone_and_listed(scanner: warden.Scanner) -> None:
    r = scanner.redact(f"mail {EMAIL}")
    reply = "Sent to <EMAIL_1>, cc <EMAIL_7>."
    assert r.vault.restore(reply) == f"Sent to {EMAIL}, cc <EMAIL_7>."
    assert r.vault.unknown_tokens(reply) == ["<EMAIL_7>"]


def test_restore_json_keeps_json_valid() -> None:
    scanner = warden.Scanner(config={"deny": [{"value": 'O"Neil \\ the', "entity": "PERSON"}]})
    r = scanner.redact('Customer O"Neil \\ the second')
    assert r.text == "Customer <PERSON_1> second"
    doc = json.dumps({"name": "<PERSON_1>"})
    assert json.loads(r.vault.restore_json(doc)) == {"name": 'O"Neil \\ the'}


def test_vault_json_round_trip(scanner: warden.Scanner) -> None:
    r = scanner.redact(f"{EMAIL} {PHONE}")
    copy = warden.Vault.from_json(r.vault.to_json())
    assert copy.restore(r.text) == f"{EMAIL} {PHONE}"
    assert len(copy) == 2


def test_vault_merge_and_conflict() -> None:
    s = warden.Scanner()
    a = s.redact(f"{EMAIL}").vault
    b = s.redact(f"{PHONE}").vault
    a.merge(b)
    assert len(a) == 2
    c = s.redact("other@example.org").vault  # also <EMAIL_1>, another value
    with pytest.raises(warden.VaultError) as info:
        a.merge(c)
    assert "other@example.org" not in str(info.value)
    assert EMAIL not in str(info.value)
    assert len(a) == 2


def test_vault_repr_shows_no_values(scanner: warden.Scanner) -> None:
    r = scanner.redact(f"{EMAIL}")
    assert EMAIL not in repr(r.vault)
    assert EMAIL not in repr(r)
    assert repr(r.vault) == "Vault(tokens=1, keyed=False)"


@pytest.mark.parametrize("strategy", ["encrypt", "", "PLACEHOLDER"])
def test_unknown_strategy_is_a_value_error(scanner: warden.Scanner, strategy: str) -> None:
    with pytest.raises(ValueError):
        scanner.redact("x", strategy=strategy)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "exc"),
    [(1, TypeError), (2.5, TypeError), (["k" * 20], TypeError), ("short", ValueError), (b"x" * 15, ValueError)],
)
def test_key_type_and_length(scanner: warden.Scanner, key: object, exc: type) -> None:
    with pytest.raises(exc):
        scanner.redact("x", key=key)  # type: ignore[arg-type]
    with pytest.raises(exc):
        warden.Vault(key=key)  # type: ignore[arg-type]


def _cli_redact(warden_bin: Path, text: str, *args: str, key: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "WARDEN_REDACT_KEY"}
    if key is not None:
        env["WARDEN_REDACT_KEY"] = key
    proc = subprocess.run(
        [str(warden_bin), "redact", *args, "-"],
        input=text.encode(),
        capture_output=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.mark.cli
@pytest.mark.parametrize("text", TEXTS[:3])
@pytest.mark.parametrize("strategy", ["placeholder", "mask", "remove", "hash"])
def test_redact_parity_with_cli(
    scanner: warden.Scanner, warden_bin: Path, text: str, strategy: str
) -> None:
    theirs = _cli_redact(warden_bin, text, "--strategy", strategy, key=KEY)
    ours = scanner.redact(text, strategy=strategy, key=KEY)  # type: ignore[arg-type]
    assert ours.text == theirs


@pytest.mark.cli
def test_cli_vault_restores_in_python(
    scanner: warden.Scanner, warden_bin: Path, tmp_path: Path
) -> None:
    text = TEXTS[1]
    vault_file = tmp_path / "vault.json"
    redacted = _cli_redact(warden_bin, text, "--vault", str(vault_file))
    vault = warden.Vault.from_json(vault_file.read_text())
    assert vault.restore(redacted) == text


MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a support agent."},
    {"role": "user", "content": f"I am {EMAIL} 👋, my ssn is {SSN}"},
    {
        "role": "assistant",
        "tool_calls": [{"function": {"name": "lookup", "arguments": {"ssn": SSN, "n": 3, "ok": True}}}],
    },
]


def test_scan_json_pointers_and_offsets(scanner: warden.Scanner) -> None:
    found = scanner.scan_json(MESSAGES)
    assert [(p, e.type) for p, e in found] == [
        ("/1/content", "EMAIL"),
        ("/1/content", "US_SSN"),
        ("/2/tool_calls/0/function/arguments/ssn", "US_SSN"),
    ]
    content = MESSAGES[1]["content"]
    assert isinstance(content, str)
    for pointer, e in found[:2]:
        assert content[e.start : e.end] == e.text


def test_redact_json_round_trip(scanner: warden.Scanner) -> None:
    r = scanner.redact_json(MESSAGES)
    assert r.value[1]["content"] == "I am <EMAIL_1> 👋, my ssn is <US_SSN_1>"
    assert r.value[2]["tool_calls"][0]["function"]["arguments"] == {"ssn": "<US_SSN_1>", "n": 3, "ok": True}
    assert r.value[0] == MESSAGES[0]
    assert EMAIL not in json.dumps(r.value) and SSN not in json.dumps(r.value)
    assert r.vault.restore_value(r.value) == MESSAGES
    assert MESSAGES[1]["content"] == f"I am {EMAIL} 👋, my ssn is {SSN}"  # input untouched
    assert len(r.entities) == 3


def test_redact_json_shares_a_vault_with_text(scanner: warden.Scanner) -> None:
    vault = warden.Vault()
    scanner.redact(f"first {SSN}", vault=vault)
    r = scanner.redact_json({"note": f"again {SSN}"}, vault=vault)
    assert r.value == {"note": "again <US_SSN_1>"}


@pytest.mark.parametrize("value", [{1: "int key"}, {"x": object()}, [float("nan")]])
def test_json_values_must_be_json(scanner: warden.Scanner, value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        scanner.scan_json(value)


def test_redaction_repeats_a_value_found_once(scanner: warden.Scanner) -> None:
    r = scanner.redact_json({"ssn": SSN, "note": f"ref {SSN}"})
    assert SSN not in json.dumps(r.value)


def test_scan_json_finds_values_in_keys(scanner: warden.Scanner) -> None:
    value = {"balances": {EMAIL: 120.5, "a/b": f"note {SSN}"}}
    found = scanner.scan_json(value)
    assert [(p, e.type, e.in_key) for p, e in found] == [
        (f"/balances/{EMAIL}", "EMAIL", True),
        ("/balances/a~1b", "US_SSN", False),
    ]
    pointer, e = found[0]
    assert EMAIL[e.start : e.end] == e.text == EMAIL
    assert e.to_dict()["in_key"] is True and found[1][1].to_dict()["in_key"] is False


def test_redact_json_renames_keys_in_place_and_restores(scanner: warden.Scanner) -> None:
    value = {"first": 1, EMAIL: {"ssn": SSN}, "last": 2}
    r = scanner.redact_json(value)
    assert list(r.value) == ["first", "<EMAIL_1>", "last"]
    assert r.value["<EMAIL_1>"] == {"ssn": "<US_SSN_1>"}
    assert EMAIL not in json.dumps(r.value)
    assert [(p, e.in_key) for p, e in r.entities] == [(f"/{EMAIL}/ssn", False), (f"/{EMAIL}", True)]
    assert r.vault.restore_value(r.value) == value
    assert list(r.vault.restore_value(r.value)) == ["first", EMAIL, "last"]


def test_redact_json_refuses_keys_that_would_collide(scanner: warden.Scanner) -> None:
    value = {"jane.doe@acme.io": 1, "john.roe@acme.io": 2}
    with pytest.raises(ValueError, match="same text") as info:
        scanner.redact_json(value, strategy="remove")
    assert "acme" not in str(info.value)
    # The placeholder strategy never collides.
    assert len(scanner.redact_json(value).value) == 2
