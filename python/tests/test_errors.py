"""Exceptions: a small hierarchy, informative messages that never quote input."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import warden

SECRET = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    "exc",
    [
        warden.PatternError,
        warden.ConfigError,
        warden.PolicyError,
        warden.VaultError,
        warden.InjectionError,
        warden.InternalError,
        warden.ToolCallDenied,
    ],
)
def test_hierarchy(exc: type) -> None:
    assert issubclass(exc, warden.WardenError)
    assert issubclass(warden.WardenError, Exception)
    assert exc.__module__ == "warden"
    assert exc.__doc__


GOOD_RULE = """
[pack]
name = "codenames"
description = "Internal project code names"

[[rule]]
id = "test.codename"
entity = "CODENAME"
description = "Project + capitalised name"
regex = 'Project [A-Z][a-z]+'
prefilter = { literals = ["Project "] }
score = 0.9
positive = [
  { text = "ship Project Bluebird now", match = "Project Bluebird" },
  { text = "Project Kestrel.", match = "Project Kestrel" },
  { text = "(Project Osprey)", match = "Project Osprey" },
]
negative = ["project bluebird", "Project 42", "Projects Bluebird"]
"""


def test_custom_pack_file_and_dir(tmp_path: Path) -> None:
    pack = tmp_path / "codenames.toml"
    pack.write_text(GOOD_RULE)
    for packs in (pack, str(pack), tmp_path, [pack]):
        (e,) = warden.Scanner(packs=packs).scan("about Project Bluebird and a@b.io")
        assert (e.type, e.rule, e.text) == ("CODENAME", "test.codename", "Project Bluebird")


def test_bad_regex_names_file_and_rule(tmp_path: Path) -> None:
    pack = tmp_path / "bad.toml"
    pack.write_text(GOOD_RULE.replace("Project [A-Z][a-z]+", "Project (?=Bluebird)"))
    with pytest.raises(warden.PatternError) as info:
        warden.Scanner(packs=pack)
    assert info.value.file is not None and "bad.toml" in info.value.file
    assert info.value.rule == "test.codename"
    assert "bad.toml" in str(info.value)


def test_bad_toml_is_a_pattern_error(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("[[rule]\nid = ")
    with pytest.raises(warden.PatternError) as info:
        warden.Scanner(packs=tmp_path)
    assert "broken.toml" in str(info.value)


def test_missing_pack_path(tmp_path: Path) -> None:
    with pytest.raises(warden.WardenError):
        warden.Scanner(packs=tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "config",
    [
        {"min_score": "high"},
        {"no_such_field": 1},
        {"redact": {"default": "encrypt"}},
        {"allow": [{"regex": "(?<=x)y"}]},
    ],
    ids=["wrong_type", "unknown_field", "bad_strategy", "lookbehind_in_allow_list"],
)
def test_bad_config(config: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises((warden.ConfigError, warden.PatternError)):
        warden.Scanner(config=config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(warden.ConfigError) as info:
        warden.Scanner(config=tmp_path / "missing.toml")
    assert "missing.toml" in str(info.value)


@pytest.mark.parametrize("config", [42, ["min_score"], object()])
def test_config_type(config: object) -> None:
    with pytest.raises(TypeError):
        warden.Scanner(config=config)  # type: ignore[arg-type]


def test_vault_errors_do_not_echo_values() -> None:
    bad_token = f'{{"version": 1, "entries": [{{"token": "nope", "entity": "CREDIT_CARD", "original": "{SECRET}"}}]}}'
    with pytest.raises(warden.VaultError) as info:
        warden.Vault.from_json(bad_token)
    assert SECRET not in str(info.value)
    with pytest.raises(warden.VaultError):
        warden.Vault.from_json(f"{{not json {SECRET}")


def test_exceptions_can_be_caught_as_warden_error(tmp_path: Path) -> None:
    with pytest.raises(warden.WardenError):
        warden.Scanner(config=tmp_path / "missing.toml")


def test_exception_pickles() -> None:
    err = pickle.loads(pickle.dumps(warden.ConfigError("x")))
    assert isinstance(err, warden.ConfigError)
