"""Writing a manual to disk: validated first, never holding a secret, replaced atomically.

The text is checked by the same reader `--manual` uses, so a manual the bridge writes always
loads; and it is checked against the secrets the run knew, so a credential given on the command
line can never end up in a file (defence in depth: `suggest.py` already replaced them all).
`refuse_secrets` is the same check for the probe's printed report.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import BridgeError, ManualError
from ..manual import Manual, parse_manual
from ..manual.variables import SecretRegistry


def manual_text(manual: dict[str, Any], *, name: str, secrets: SecretRegistry) -> str:
    """The manual as indented JSON, once it loads and holds no secret."""
    text = json.dumps(manual, indent=2, ensure_ascii=False) + "\n"
    refuse_secrets(text, secrets, "write a manual")
    check_manual(text, name=name)
    return text


def refuse_secrets(text: str, secrets: SecretRegistry, action: str) -> None:
    """Raise when `text` holds any value the run knew as secret (the last line of defence)."""
    if secrets and secrets.redact(text) != text:
        raise BridgeError(
            f"Refusing to {action} that holds a secret.",
            hint="Give credentials as ${VAR} placeholders (e.g. --header 'X-Api-Key: ${API_KEY}'); "
            "if they were, this is a bug in mcp-sse-bridge: please report it.",
        )


def check_manual(text: str, *, name: str) -> Manual:
    try:
        return parse_manual(text, name=name, source="the written manual", trusted=True)
    except ManualError as err:
        raise BridgeError(
            f"The manual to write does not load: {err}",
            hint="This is a bug in mcp-sse-bridge; please report it with the command line.",
        ) from None


def write_text(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename (never half a file)."""
    target = Path(path).expanduser()
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BridgeError(
            f"{path}: cannot write the manual ({exc.strerror or type(exc).__name__}).",
            hint="Check that the directory exists and is writable.",
        ) from None
