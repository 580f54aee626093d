"""The documentation is part of the API: examples run, every public item has a docstring."""

from __future__ import annotations

import doctest
import inspect
from pathlib import Path
from typing import Any

import pytest

import warden

WITH_EXAMPLES = [
    warden.Scanner,
    warden.Vault,
    warden.Policy,
    warden.check_injection,
]


@pytest.mark.parametrize("obj", WITH_EXAMPLES, ids=lambda o: o.__name__)
def test_docstring_examples_run(obj: Any) -> None:
    tests = doctest.DocTestFinder(recurse=False).find(obj, obj.__name__, globs={"warden": warden})
    assert tests and tests[0].examples, "no >>> examples found"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0


def _public_members(obj: Any) -> list[tuple[str, Any]]:
    return [
        (name, member)
        for name, member in inspect.getmembers(obj)
        if not name.startswith("_")
    ]


@pytest.mark.parametrize("name", sorted(n for n in warden.__all__ if n != "__version__"))
def test_every_public_item_is_documented(name: str) -> None:
    obj = getattr(warden, name)
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        for member_name, member in _public_members(obj):
            assert (member.__doc__ or "").strip(), f"{name}.{member_name} has no docstring"


def test_typing_marker_ships() -> None:
    pkg = Path(warden.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "__init__.pyi").exists()
    assert (pkg / "_warden.pyi").exists()
