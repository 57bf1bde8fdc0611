"""Reading request bodies: JSON with a nesting limit, and NDJSON lines with a line limit.

Sizes are limited before this (see :class:`api.app.BodyLimitMiddleware`):
a body that reaches these functions is at most the configured bytes.

>>> json_depth({"a": [1, {"b": []}]})
4
>>> ndjson_lines(b'{"id": 1}\\n\\n{"id": 2}\\r\\n', max_lines=10)
([1, 3], [b'{"id": 1}', b'{"id": 2}'])
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from .problems import Problem

__all__ = ["parse_json", "json_depth", "ndjson_lines"]


def parse_json(body: bytes, max_depth: int) -> Any:
    """Return the JSON value of ``body``; raise 400 if it is not JSON, 422 if it nests deeper than ``max_depth``."""
    if not body.strip():
        raise Problem(400, "the request body is empty; send a JSON object", code="invalid_json")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise _too_deep(max_depth) from None
        raise Problem(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None
    if json_depth(value, stop_after=max_depth) > max_depth:
        raise _too_deep(max_depth)
    return value


def json_depth(value: Any, stop_after: int | None = None) -> int:
    """Return how deep containers nest in ``value`` (a scalar is 0); stop counting past ``stop_after``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > deepest:
            deepest = depth
            if stop_after is not None and deepest > stop_after:
                return deepest
        # Scalars are the bulk of big documents (route coordinates): skip them without a stack push.
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def ndjson_lines(body: bytes, max_lines: int) -> tuple[list[int], list[bytes]]:
    """Return the line numbers (from 1) and the text of the non-blank lines of ``body``; 413 past ``max_lines``."""
    raw = body.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()  # the newline that ends the last line
    if len(raw) > max_lines:
        raise Problem(
            413,
            f"a bulk request takes at most {max_lines} lines, this one has {len(raw)}; send smaller batches",
            code="too_many_lines",
            field="body",
        )
    numbers: list[int] = []
    lines: list[bytes] = []
    for number, line in enumerate(raw, start=1):
        line = line.rstrip(b"\r")
        if line.strip():
            numbers.append(number)
            lines.append(line)
    return numbers, lines


def _too_deep(max_depth: int) -> Problem:
    return Problem(422, f"the JSON body nests deeper than {max_depth} levels", code="too_deep", field="body")
