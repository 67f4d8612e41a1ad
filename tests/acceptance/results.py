"""How the acceptance tests read and judge a tool call's result, the way a strict host would.

A batch is structured content whose one text block holds the same JSON (and, where the test has
the tool's outputSchema, valid against it); an error is `is_error` with one line of text that
names what failed and holds no secret, no traceback and no "Internal error".
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from jsonschema import Draft202012Validator

from tests.acceptance.credentials import CLIENT_SECRET, SECRET

INTERNAL_ERROR = "Internal error"
MARGIN = 0.75  # seconds a call may run past its max_seconds on this shared 2-core machine


def text_of(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 defines it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def batch_of(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    return result.structured_content


def checked_batch(result: types.CallToolResult, output_schema: dict[str, Any]) -> dict[str, Any]:
    """The batch, after checking it the way a strict host would: structured content valid
    against the tool's declared outputSchema, and the one text block holding the same JSON."""
    assert not result.is_error, text_of(result)
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
    batch = result.structured_content
    assert batch is not None
    Draft202012Validator(output_schema).validate(batch)
    assert json.loads(result.content[0].text) == batch
    return batch


def ids(batch: dict[str, Any]) -> list[str]:
    return [event["id"] for event in batch["events"]]


def error_of(result: types.CallToolResult, *words: str) -> str:
    """The text of an error result, checked: one line, naming `words`, no secret, no trace."""
    text = text_of(result)
    assert result.is_error, text
    assert "\n" not in text and "Traceback" not in text and INTERNAL_ERROR not in text, text
    assert ".." not in text, text  # no sentence ends twice
    assert SECRET not in text and CLIENT_SECRET not in text, text
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in {text!r}"
    return text


def check_error(result: types.CallToolResult, *fragments: str) -> list[str]:
    """What is wrong with an error result (empty when it is right): `is_error`, one line of
    text naming `fragments`, no structured content, no secret, no internal error."""
    text = text_of(result)
    problems = []
    if not result.is_error:
        problems.append("not is_error")
    if result.structured_content is not None:
        problems.append("carries structured content")
    if len(result.content) != 1 or "\n" in text:
        problems.append("is not one line of text")
    problems += [f"does not name {f!r}" for f in fragments if f.lower() not in text.lower()]
    problems += [f"holds {bad!r}" for bad in (SECRET, INTERNAL_ERROR, "Traceback") if bad in text]
    return [f"{problem}: {text[:300]}" for problem in problems]
