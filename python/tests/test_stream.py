"""Streaming restore: any cut of the stream gives the same text as one restore."""

from __future__ import annotations

import random
from typing import Sequence, Union

import pytest

import warden

ORIGINAL = (
    "Dear Rene\u0301e 👋, we mailed jane.doe@acme.io and phoned +44 20 7946 0958 "
    "about SSN 536-90-4399 — 請回覆 jane.doe@acme.io 🙏🏽."
)


@pytest.fixture(scope="module")
def redaction() -> warden.Redaction:
    r = warden.Scanner().redact(ORIGINAL)
    assert r.text.count("<") >= 4, r.text
    return r


def _restore(
    vault: warden.Vault, chunks: Sequence[Union[str, bytes]], json_escaped: bool = False
) -> str:
    restorer = vault.restorer(json_escaped=json_escaped)
    out = "".join(restorer.feed(c) for c in chunks)
    return out + restorer.finish()


def _cuts(n: int, k: int, rng: random.Random) -> list[int]:
    return sorted(rng.sample(range(1, n), min(k, n - 1)))


def _split(seq: Union[str, bytes], cuts: list[int]) -> list[Union[str, bytes]]:
    edges = [0, *cuts, len(seq)]
    return [seq[a:b] for a, b in zip(edges, edges[1:])]


def test_every_single_str_cut(redaction: warden.Redaction) -> None:
    text = redaction.text
    for i in range(len(text) + 1):
        assert _restore(redaction.vault, [text[:i], text[i:]]) == ORIGINAL, i


def test_every_single_byte_cut(redaction: warden.Redaction) -> None:
    data = redaction.text.encode()
    for i in range(len(data) + 1):
        assert _restore(redaction.vault, [data[:i], data[i:]]) == ORIGINAL, i


def test_cuts_inside_placeholders_are_held_back(redaction: warden.Redaction) -> None:
    text = redaction.text
    at = text.index("<EMAIL_1>") + 4  # "<EMA" | "IL_1>..."
    restorer = redaction.vault.restorer()
    first = restorer.feed(text[:at])
    assert "<EMA" not in first and first == ORIGINAL[: len(first)]
    rest = restorer.feed(text[at:]) + restorer.finish()
    assert first + rest == ORIGINAL


def test_cut_inside_a_multibyte_character_is_held_back() -> None:
    restorer = warden.Vault().restorer()
    wave = "👋".encode()
    assert restorer.feed(b"hi " + wave[:2]) == "hi "
    assert restorer.feed(wave[2:] + b"!") == "👋!"
    assert restorer.finish() == ""


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("unit", ["str", "bytes", "one_char_chunks"])
def test_random_chunkings(redaction: warden.Redaction, seed: int, unit: str) -> None:
    rng = random.Random(seed)
    chunks: list[Union[str, bytes]]
    if unit == "str":
        text = redaction.text
        chunks = _split(text, _cuts(len(text), rng.randint(1, 40), rng))
    elif unit == "bytes":
        data = redaction.text.encode()
        chunks = _split(data, _cuts(len(data), rng.randint(1, 60), rng))
    else:
        chunks = list(redaction.text)
    assert _restore(redaction.vault, chunks) == ORIGINAL


def test_restore_stream_helper(redaction: warden.Redaction) -> None:
    text = redaction.text
    pieces = list(warden.restore_stream(redaction.vault, (text[i : i + 3] for i in range(0, len(text), 3))))
    assert all(pieces)
    assert "".join(pieces) == ORIGINAL


def test_json_escaped_stream() -> None:
    scanner = warden.Scanner(config={"deny": [{"value": 'Bob "the" Builder', "entity": "PERSON"}]})
    r = scanner.redact('Bob "the" Builder called')
    stream = '{"customer": "<PERSON_1>", "n": 1}'
    for i in range(len(stream) + 1):
        out = _restore(r.vault, [stream[:i], stream[i:]], json_escaped=True)
        assert out == '{"customer": "Bob \\"the\\" Builder", "n": 1}'


def test_finish_ends_the_stream() -> None:
    restorer = warden.StreamRestorer(warden.Vault())
    assert restorer.feed("<EMAIL_") == ""
    assert restorer.finish() == "<EMAIL_"
    with pytest.raises(warden.WardenError):
        restorer.feed("more")
    with pytest.raises(warden.WardenError):
        restorer.finish()


def test_restorer_is_a_snapshot(redaction: warden.Redaction) -> None:
    scanner = warden.Scanner()
    vault = warden.Vault()
    restorer = vault.restorer()
    scanner.redact("jane.doe@acme.io", vault=vault)
    assert restorer.feed("<EMAIL_1>") + restorer.finish() == "<EMAIL_1>"
    assert vault.restore("<EMAIL_1>") == "jane.doe@acme.io"


@pytest.mark.parametrize("chunk", [1, None, ["x"], 2.5])
def test_feed_rejects_other_types(chunk: object) -> None:
    with pytest.raises(TypeError):
        warden.Vault().restorer().feed(chunk)  # type: ignore[arg-type]
