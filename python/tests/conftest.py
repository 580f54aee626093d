"""Shared fixtures: one scanner for the session, and the `warden` binary."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import warden

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The demo ledger and default state store live in Warden's cache dir:
    keep them out of the user's home, and fresh for each test run."""
    os.environ["WARDEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("warden-cache"))


@pytest.fixture
def policy(tmp_path: Path) -> warden.Policy:
    """The demo policy with a state store (holds, approvals) of its own."""
    return warden.Policy.demo(state=f"sqlite:{tmp_path / 'state.sqlite'}")


@pytest.fixture(scope="session")
def scanner() -> warden.Scanner:
    return warden.Scanner()


@pytest.fixture(scope="session")
def warden_bin() -> Path:
    """The CLI built from the same sources (`cargo build` if it is missing)."""
    env = os.environ.get("WARDEN_BIN")
    path = Path(env) if env else ROOT / "target" / "debug" / "warden"
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "--bin", "warden"], cwd=ROOT, check=True)
    assert path.exists(), f"no warden binary at {path}"
    return path
