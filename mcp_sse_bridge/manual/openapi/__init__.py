"""OpenAPI 3.0, 3.1 and 3.2 documents -> manuals: one SSE tool per event-stream operation.

Owns reading an OpenAPI document's tree (already decoded from JSON or YAML by `loading.py`)
into the JSON of a UTCP manual, which `reader.py` then validates like any manual: `refs.py`
resolves `$ref`s and writes standalone input schemas, `security.py` maps `securitySchemes` to
`auth`, `events.py` reads 3.2's `itemSchema`, `operations.py` maps one operation. Imports only
`errors` and `manual/` modules below it (`models`, `reader`).

Operations that are not event streams, or that the bridge cannot call, are listed in
`Imported.skipped` with the reason; a broken document is one `ManualError` naming its JSON path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...errors import ManualError
from ..reader import ManualReader, join_path
from .operations import Operation, Skip, build_tool, stream_media
from .refs import Resolver
from .security import SecurityMapper, env_name

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "query")
_VERSION = re.compile(r"3\.[0-2](\.\d+)?(-.*)?")
_SERVER_VARIABLE = re.compile(r"\{([^{}]+)\}")


@dataclass
class Imported:
    manual: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # "GET /users (listUsers): why"
    warnings: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)  # what the tools' auth reads

    def notes(self, source: str) -> list[str]:
        """The skipped operations and warnings, as a loaded manual's warnings."""
        return [f"{source}: OpenAPI: skipped {line}" for line in self.skipped] + [
            f"{source}: OpenAPI: {line}" for line in self.warnings
        ]


def is_openapi(data: Any) -> bool:
    return isinstance(data, dict) and ("openapi" in data or "swagger" in data)


def import_openapi(document: Any, *, source: str, base_url: str | None = None) -> Imported:
    """The manual for `document`'s event streams; `base_url` replaces its servers."""
    if not isinstance(document, dict):
        raise ManualError(f"{source}: an OpenAPI document is an object.", hint="Check the file.")
    openapi_30 = _version(document, source)
    resolver = Resolver(document, source)
    security = SecurityMapper(resolver, document)
    imported = Imported(manual={})
    tools: list[dict[str, Any]] = []
    for op in _operations(resolver, document):
        label = f"{op.method.upper()} {op.path}"
        if isinstance(op.node.get("operationId"), str):
            label += f" ({op.node['operationId']})"
        if stream_media(resolver, op) is None:
            imported.skipped.append(f"{label}: no text/event-stream response")
            continue
        base = base_url or _server(resolver, document, op, imported)
        try:
            tool, variables = build_tool(
                resolver, security, op, base, openapi_30=openapi_30, warnings=imported.warnings
            )
            ManualReader(f"{source}: {op.where}").tool(0, tool)
        except Skip as reason:
            imported.skipped.append(f"{label}: {reason}")
            continue
        except ManualError as err:
            imported.skipped.append(f"{label}: {err.message}")
            continue
        tools.append(tool)
        imported.variables += [var for var in variables if var not in imported.variables]
    if not tools:
        raise ManualError(
            f"{source}: no operation can be a tool: {'; '.join(imported.skipped[:5]) or 'no paths'}"
            f"{' ...' if len(imported.skipped) > 5 else ''}.",
            hint="The bridge imports operations whose 2xx response has content type "
            "text/event-stream, called with GET or POST.",
        )
    _unique_names(tools)
    info = document.get("info")
    version = info.get("version") if isinstance(info, dict) else None
    imported.manual = {
        "utcp_version": "1.0.1",
        "manual_version": version if isinstance(version, str) else "1.0.0",
        "tools": tools,
    }
    return imported


def _version(document: dict[str, Any], source: str) -> bool:
    """Whether the document is OpenAPI 3.0 (its own schema dialect); refuses others."""
    version = document.get("openapi")
    if "swagger" in document and version is None:
        raise ManualError(
            f"{source}: swagger: Swagger 2.0 documents are not supported.",
            hint="Convert it to OpenAPI 3 first (e.g. with swagger2openapi).",
        )
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ManualError(
            f"{source}: openapi: expected a version 3.0.x, 3.1.x or 3.2.x, got {version!r:.40}.",
            hint='Write e.g. openapi: "3.1.0".',
        )
    return version.startswith("3.0")


def _operations(resolver: Resolver, document: dict[str, Any]) -> list[Operation]:
    paths, where = resolver.mapping(document.get("paths", {}), "paths", "paths")
    found: list[Operation] = []
    for path, item in paths.items():
        ipath = join_path(where, path)
        if not path.startswith("/"):
            raise resolver.error(ipath, "a path must start with /", "Write e.g. /stream.")
        item, ipath = resolver.mapping(item, ipath, "a path item")
        shared = _parameters(resolver, item, ipath)
        methods = [(m, item[m], join_path(ipath, m)) for m in METHODS if m in item]
        extra = item.get("additionalOperations")  # 3.2: methods of any name
        if isinstance(extra, dict):
            apath = join_path(ipath, "additionalOperations")
            methods += [(m.lower(), op, join_path(apath, m)) for m, op in extra.items()]
        for method, node, opath in methods:
            node, opath = resolver.mapping(node, opath, "an operation")
            own = _parameters(resolver, node, opath)
            merged = {(p["in"], p["name"]): (p, pp) for p, pp in [*shared, *own]}
            found.append(Operation(path, method, node, opath, list(merged.values())))
    return found


def _parameters(
    resolver: Resolver, node: dict[str, Any], path: str
) -> list[tuple[dict[str, Any], str]]:
    raw = node.get("parameters", [])
    where = join_path(path, "parameters")
    if not isinstance(raw, list):
        raise resolver.error(where, "must be a list", "Write parameters as a list of objects.")
    params = []
    for i, item in enumerate(raw):
        param, ppath = resolver.mapping(item, f"{where}[{i}]", "a parameter")
        if not isinstance(param.get("name"), str) or param.get("in") not in (
            "path",
            "query",
            "header",
            "cookie",
        ):
            raise resolver.error(
                ppath,
                'a parameter needs a "name" and "in" (path, query, header or cookie)',
                'Write e.g. {"name": "symbol", "in": "path", "required": true}.',
            )
        params.append((param, ppath))
    return params


def _server(resolver: Resolver, document: dict[str, Any], op: Operation, imported: Imported) -> str:
    """The operation's server URL (its own, its path's or the document's), variables filled."""
    servers = op.node.get("servers") or document.get("servers") or [{"url": "/"}]
    if not isinstance(servers, list) or not isinstance(servers[0], dict):
        raise resolver.error("servers", "must be a list of objects with a url", "Fix servers.")
    server = servers[0]
    url = server.get("url")
    if not isinstance(url, str):
        raise resolver.error("servers[0].url", "must be a string", "Write the server's URL.")
    variables = server.get("variables") if isinstance(server.get("variables"), dict) else {}

    def fill(match: re.Match[str]) -> str:
        spec = variables.get(match[1])
        default = spec.get("default") if isinstance(spec, dict) else None
        return str(default) if default is not None else match[0]

    url = _SERVER_VARIABLE.sub(fill, url)
    if "://" not in url:
        info = document.get("info")
        title = info.get("title") if isinstance(info, dict) else None
        var = f"{env_name(title if isinstance(title, str) else 'API')}_BASE_URL"
        if var not in imported.variables:
            imported.variables.append(var)
            imported.warnings.append(
                f"the document has no absolute server URL; the tools use ${{{var}}} "
                "(or pass --base-url to import)"
            )
        url = f"${{{var}}}" + ("" if url == "/" else url)
    return url


def _unique_names(tools: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for tool in tools:
        name, n = tool["name"], 2
        while name in seen:
            name, n = f"{tool['name']}_{n}", n + 1
        tool["name"] = name
        seen.add(name)
