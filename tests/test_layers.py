"""The import contract: layers only point down.

From the top: the tests, the benchmarks, the tools (command line, capacity
planning, test services), the service (HTTP API, event broker, HTTP client,
``tripsearch.open``), ride alerts, the backends, the backend contract,
facets, the query, the engine core, the trip model, and the foundations
(errors, geometry, offline data). A module may import its own layer and the
layers below it, never one above. Every import counts, including those inside
functions and under ``TYPE_CHECKING``: a lazy import against the order is
still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tests", "benchmarks", "tripsearch", "api")

# Top first. A module belongs to the layer of its longest matching prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tests",),
    ("benchmarks",),
    ("tripsearch.cli", "tripsearch.capacity", "tripsearch.dev", "tripsearch.testing"),
    ("api", "tripsearch.broker", "tripsearch.client", "tripsearch"),
    ("tripsearch.alerts",),
    ("tripsearch.index",),
    ("tripsearch.backend",),
    ("tripsearch.facets",),
    ("tripsearch.query",),
    ("tripsearch.core",),
    ("tripsearch.model", "tripsearch.occurrences"),
    ("tripsearch.errors", "tripsearch.geo", "tripsearch.routetext", "tripsearch.data", "tripsearch.aio"),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path, packages: Sequence[str]) -> dict[str, Path]:
    """Return the modules of ``packages`` under ``root`` by dotted name."""
    return {module_name(path, root): path for package in packages for path in sorted((root / package).rglob("*.py"))}


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Yield the absolute names ``name`` imports (a module where one is named), with their line numbers."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) if node.level else node.module or ""
            for alias in node.names:
                yield (f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base), node.lineno


def layer(name: str, layers: Sequence[Sequence[str]]) -> int | None:
    """Return the index of the layer ``name`` belongs to (0 is the top), None outside every layer."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(layers):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def violations(root: Path, packages: Sequence[str], layers: Sequence[Sequence[str]]) -> list[str]:
    """Return every import under ``root`` from a layer to a layer above it, as ``path:line: a imports b``."""
    known = modules(root, packages)
    found = []
    for name, path in known.items():
        own = layer(name, layers)
        for target, line in imports(name, path, known):
            theirs = layer(target, layers)
            if own is not None and theirs is not None and theirs < own:
                found.append(f"{path.relative_to(root)}:{line}: {name} imports {target}, a layer above it")
    return found


def test_layers_only_point_down() -> None:
    assert violations(ROOT, PACKAGES, LAYERS) == []


def test_an_import_against_the_order_is_reported(tmp_path: Path) -> None:
    """The checker itself: a copy of the real layering with wrong imports planted in it."""
    files = {
        "tripsearch/__init__.py": "",
        "tripsearch/model.py": "from .errors import InvalidTrip\n",
        "tripsearch/errors.py": "",
        "tripsearch/query/__init__.py": "",
        "tripsearch/query/matching.py": """
            from ..model import Trip
            from ..facets import FacetTallies  # against the order
        """,
        "tripsearch/facets/__init__.py": "from ..query.matching import Evaluation\n",
        "tripsearch/index/__init__.py": "",
        "tripsearch/index/embedded.py": """
            def search():
                from ..cli import main  # against the order, even inside a function
        """,
        "tripsearch/cli/__init__.py": "from ..index import embedded\n",
        "benchmarks/__init__.py": "",
        "benchmarks/test_x.py": "from tests.helpers import wait  # against the order\n",
        "tests/__init__.py": "",
        "tests/helpers.py": "import benchmarks.test_x\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text))
    assert violations(tmp_path, PACKAGES, LAYERS) == [
        "benchmarks/test_x.py:1: benchmarks.test_x imports tests.helpers, a layer above it",
        "tripsearch/index/embedded.py:3: tripsearch.index.embedded imports tripsearch.cli, a layer above it",
        "tripsearch/query/matching.py:3: tripsearch.query.matching imports tripsearch.facets, a layer above it",
    ]


def test_the_readme_layout_lists_every_package_and_top_level_module() -> None:
    """README's layout section: one entry (a backticked path and a colon) per package, top-level module and top-level folder."""
    section = (ROOT / "README.md").read_text().split("### Layout", 1)[1].split("\n#", 1)[0]
    listed = set(re.findall(r"`([^`]+)`:", section))
    packages = {f"{init.parent.relative_to(ROOT).as_posix()}/" for top in ("tripsearch", "api") for init in (ROOT / top).rglob("__init__.py")} - {"tripsearch/"}
    top_modules = {f"tripsearch/{path.name}" for path in (ROOT / "tripsearch").glob("*.py") if path.name != "__init__.py"}
    assert listed == packages | top_modules | {"tests/", "benchmarks/", "scripts/", "docs/"}
