"""The Elasticsearch backend keeps the Backend contract and is documented; its modules' doctests run.

No server needed. Also checks the rule of the cluster fixture: skip outside
CI, fail in CI.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
from pathlib import Path

import pytest

from tripsearch.backend import Backend
from tripsearch.index.elastic import ElasticBackend

from tripsearch.testing import unavailable

DOC = (Path(__file__).resolve().parents[2] / "docs" / "elasticsearch.md").read_text()
CONTRACT = [name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if not name.startswith("_")]


@pytest.mark.parametrize("name", CONTRACT)
def test_the_backend_contract_is_kept(name: str) -> None:
    assert inspect.signature(getattr(ElasticBackend, name)).parameters.keys() == inspect.signature(getattr(Backend, name)).parameters.keys()


def test_every_public_method_has_a_docstring() -> None:
    for name, member in inspect.getmembers(ElasticBackend, inspect.isfunction):
        if not name.startswith("_"):
            assert member.__doc__, f"ElasticBackend.{name} has no docstring"


def test_every_option_is_documented() -> None:
    options = [p for p in inspect.signature(ElasticBackend).parameters if p != "url"]
    for option in options:
        assert f"| `{option}` |" in DOC, f"docs/elasticsearch.md does not list the option {option}"


@pytest.mark.parametrize("module", ["tripsearch.index.elastic.query", "tripsearch.index.elastic.encoding", "tripsearch.index.elastic.connection", "tripsearch.index.elastic.indices"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0


def test_a_cluster_that_cannot_start_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no JDK"):
        unavailable("Elasticsearch", "no JDK")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        unavailable("Elasticsearch", "no JDK")
