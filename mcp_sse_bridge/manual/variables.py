"""`${VAR}` / `$VAR` in call templates, where their values come from, and redaction.

Syntax: `${NAME}` or `$NAME` (NAME = `[A-Za-z_][A-Za-z0-9_]*`) in any string value of a call
template, never in keys. `$$` is a literal `$` (so `$$filter` sends `$filter`). A string holding
a JSON-schema `$ref` is left as it is. `${...}` around anything but a NAME is an error, so a typo
such as `${API-KEY}` is not sent to the upstream as literal text.

Lookup, as UTCP namespaces it: for manual `my_api`, `${API_TOKEN}` is first looked up as
`my__api_API_TOKEN` (underscores in the manual name doubled, then `_`, then the name). The plain
`API_TOKEN` is read only for a trusted manual (a local file the user named) or, for a manual
fetched from a URL, when the user allow-listed that name: otherwise a remote manual could copy
any secret of the environment (say `${AWS_SECRET_ACCESS_KEY}`) into a request to its own host.
Explicit values (`--var`) are consulted first under the same names, then the environment
(which includes `--env-file`). An empty value counts as unset.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel

from ..errors import BridgeError, VariableError
from .models import Manual, ToolSpec

# `$$`, then `${...}` (group 2 is empty when the brace is never closed), then `$NAME`.
_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)(\}?)|\$([A-Za-z_][A-Za-z0-9_]*)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON_REF = re.compile(r"\$ref(?![A-Za-z0-9_])")
# Namespaced names contain the manual name, which may start with a digit or hold a hyphen.
_ENV_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_EXPORT = re.compile(r"export\s+")
_QUOTED_TAIL = re.compile(r"\s*(#.*)?")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


class SecretRegistry:
    """Every resolved value, redacted from any text that leaves the bridge.

    Each value is also registered in the forms an upstream may echo it in: percent-encoded (as
    in a query string) and JSON-escaped (as in a JSON error body, also with `/` written `\\/` as
    PHP's json_encode does, and with non-ASCII as `\\u00e9`). Longest first, so that a secret
    containing another is masked whole. Values under 4 characters are ignored: masking `"1"` or
    `"abc"` would shred every message while protecting nothing.
    """

    MIN_LENGTH = 4

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        if len(value) < self.MIN_LENGTH:
            return
        forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
        for escaped in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
            forms |= {escaped, escaped.replace("/", "\\/")}
        if not forms <= self._values:
            self._values |= forms
            self._pattern = None

    def copy(self) -> SecretRegistry:
        """A registry with the same values, for one call's additions."""
        clone = SecretRegistry()
        clone._values = set(self._values)
        return clone

    def redact(self, text: str) -> str:
        if not self._values:
            return text
        if self._pattern is None:
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return self._pattern.sub("***", text)

    def __bool__(self) -> bool:
        """False while nothing is registered, so callers can skip redaction work entirely."""
        return bool(self._values)

    def __contains__(self, text: object) -> bool:
        """True when `text` holds a registered value (so also for a registered value itself)."""
        return isinstance(text, str) and self.redact(text) != text


class Variables:
    """Resolves a manual's variables from explicit values and the environment."""

    def __init__(
        self,
        explicit: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        allow: Iterable[str] = (),
    ) -> None:
        self.explicit = dict(explicit or {})
        self.environ = os.environ if environ is None else environ
        self.allow = frozenset(allow)

    def candidates(self, manual: Manual, var: str) -> list[str]:
        """The names that satisfy `var` for this manual, in lookup order."""
        names = [manual.name.replace("_", "__") + "_" + var]
        if manual.trusted or var in self.allow:
            names.append(var)
        return names

    def lookup(self, manual: Manual, var: str) -> str | None:
        names = self.candidates(manual, var)
        for source in (self.explicit, self.environ):
            for name in names:
                if source.get(name):
                    return source[name]
        return None

    def substitute(
        self,
        manual: Manual,
        value: Any,
        secrets: SecretRegistry,
        *,
        tool: ToolSpec | None = None,
    ) -> Any:
        """Replace variables in every string of `value` (dicts, lists and pydantic models).

        Raises one `VariableError` naming every candidate of every missing variable.
        """
        missing: dict[str, None] = {}
        result = self._substitute(manual, value, secrets, missing)
        if missing:
            raise self._missing_error(manual, list(missing), tool)
        return result

    def missing(self, manual: Manual, tool: ToolSpec) -> list[tuple[str, list[str]]]:
        """(variable, candidate names) for each variable of the tool that cannot be resolved."""
        return [
            (var, self.candidates(manual, var))
            for var in self.referenced(tool)
            if self.lookup(manual, var) is None
        ]

    def referenced(self, tool: ToolSpec) -> list[str]:
        """The variable names a tool's call template uses, in order of first appearance."""
        found: dict[str, None] = {}
        for text in _strings(tool.template.model_dump()):
            if not _JSON_REF.search(text):
                for match in _REFERENCE.finditer(text):
                    var = match[1] if match[1] is not None else match[3]
                    if var and _VAR_NAME.fullmatch(var) and match[2] != "":
                        found[var] = None
        return list(found)

    def _substitute(
        self, manual: Manual, value: Any, secrets: SecretRegistry, missing: dict[str, None]
    ) -> Any:
        if isinstance(value, str):
            return self._substitute_text(manual, value, secrets, missing)
        if isinstance(value, dict):
            return {k: self._substitute(manual, v, secrets, missing) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(manual, v, secrets, missing) for v in value]
        if isinstance(value, BaseModel):
            data = self._substitute(manual, value.model_dump(by_alias=True), secrets, missing)
            return value if missing else type(value).model_validate(data)
        return value

    def _substitute_text(
        self, manual: Manual, text: str, secrets: SecretRegistry, missing: dict[str, None]
    ) -> str:
        if "$" not in text or _JSON_REF.search(text):
            return text

        def replace(match: re.Match[str]) -> str:
            if match[0] == "$$":
                return "$"
            var = match[1] if match[1] is not None else match[3]
            if not _VAR_NAME.fullmatch(var) or match[2] == "":
                raise VariableError(
                    f"manual {manual.name!r}: {match[0][:40]!r} is not a valid variable reference.",
                    names=[],
                    hint="Variable names use letters, digits and _ (not starting with a digit);"
                    " write $$ for a literal $.",
                )
            found = self.lookup(manual, var)
            if found is None:
                missing[var] = None
                return match[0]
            secrets.add(found)
            return found

        return _REFERENCE.sub(replace, text)

    def _missing_error(
        self, manual: Manual, variables: list[str], tool: ToolSpec | None
    ) -> VariableError:
        where = f"manual {manual.name!r}" + (f", tool {tool.name!r}" if tool else "")
        options = {var: self.candidates(manual, var) for var in variables}
        if len(variables) == 1:
            (var,) = variables
            message = f"{where}: variable {var} is not set."
            what, example = _one_of(options[var]), options[var][-1]
        else:
            message = f"{where}: variables {', '.join(variables)} are not set."
            what = " and ".join(f"{var} as {_one_of(options[var])}" for var in variables)
            example = "NAME"
        hint = f"Set {what} in the environment, in --env-file, or pass --var {example}=VALUE."
        hidden = [var for var in variables if var not in options[var]]
        if hidden:
            hint += (
                f" Manual {manual.name!r} was loaded from a URL, so it reads only namespaced "
                f"names unless you pass {' '.join(f'--allow-env {var}' for var in hidden)}."
            )
        names = [name for candidates in options.values() for name in candidates]
        return VariableError(message, names=names, hint=hint)


def needs_substitution(value: Any) -> bool:
    """False when `Variables.substitute` would return `value` as it is: no string holds a `$`.

    Substituting a pydantic model dumps and re-validates it, so callers that substitute the same
    template on every call decide this once and skip the templates without variables.
    """
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return any("$" in text and not _JSON_REF.search(text) for text in _strings(value))


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"one of {', '.join(names)}"


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def parse_var(text: str) -> tuple[str, str]:
    """`--var NAME=VALUE`; errors never repeat the value."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise BridgeError(
            "--var: expected NAME=VALUE but found no '='.", hint="Write --var NAME=VALUE."
        )
    if not _ENV_NAME.fullmatch(name):
        raise BridgeError(
            "--var: invalid variable name before '='.",
            hint="Write --var NAME=VALUE; names use letters, digits, _ . and -.",
        )
    if not value:
        raise BridgeError(
            f"--var {name}=: the value is empty.", hint=f"Write --var {name}=VALUE with a value."
        )
    return name, value


def parse_env_file(path: str) -> dict[str, str]:
    """Read a .env file: `KEY=VALUE`, `export KEY=VALUE`, quotes, `#` comments, blank lines.

    Values are literal (no `${...}` expansion). In double quotes `\\n`, `\\t`, `\\"` and `\\\\`
    are escapes; single quotes keep everything as written; an unquoted value ends at ` #`.
    Errors name the file and line, never the value.
    """
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BridgeError(f"{path}: the env file is not UTF-8.", hint="Save it as UTF-8.") from None
    except OSError as exc:
        raise BridgeError(
            f"{path}: cannot read the env file ({exc.strerror or type(exc).__name__}).",
            hint="Check the --env-file path.",
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            name, value = _env_line(_EXPORT.sub("", line, count=1))
        except ValueError as exc:
            raise BridgeError(
                f"{path}, line {number}: {exc}.",
                hint="Write KEY=VALUE, optionally quoted: KEY=\"VALUE\" or KEY='VALUE'.",
            ) from None
        values[name] = value
    return values


def _env_line(line: str) -> tuple[str, str]:
    name, sep, rest = line.partition("=")
    name = name.strip()
    if not sep:
        raise ValueError("expected KEY=VALUE but found no '='")
    if not _ENV_NAME.fullmatch(name):
        raise ValueError("invalid variable name before '=' (use letters, digits, _ . and -)")
    quoted = rest.strip()
    if quoted[:1] == "'":
        value, sep, tail = quoted[1:].partition("'")
        if not sep:
            raise ValueError(f"{name}: unterminated single quote (values are one line)")
    elif quoted[:1] == '"':
        value, tail = _double_quoted(name, quoted[1:])
    else:
        value, tail = re.split(r"\s+#", rest, maxsplit=1)[0].strip(), ""
    if not _QUOTED_TAIL.fullmatch(tail):
        raise ValueError(f"{name}: unexpected text after the closing quote")
    return name, value


def _double_quoted(name: str, text: str) -> tuple[str, str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), text[i + 1 :]
        if char == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        out.append(char)
        i += 1
    raise ValueError(f"{name}: unterminated double quote (values are one line)")
