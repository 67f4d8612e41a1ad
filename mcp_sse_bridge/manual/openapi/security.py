"""`securitySchemes` -> the manual's `auth`, with `${VAR}`s named after the scheme.

| scheme | auth | variables (scheme `marketKey`) |
|---|---|---|
| apiKey in header / query / cookie | `api_key` at that place | `MARKET_KEY` |
| http bearer | `api_key` `Bearer ${...}` in `Authorization` | `MARKET_KEY` |
| http basic | `basic` | `MARKET_KEY_USERNAME`, `MARKET_KEY_PASSWORD` |
| oauth2 clientCredentials | `oauth2` (tokenUrl, scopes) | `..._CLIENT_ID`, `..._CLIENT_SECRET` |

An operation's `security` (else the document's) lists alternatives: the first one that can be
mapped wins, and `{}` (anonymous) counts only when nothing else can. A requirement naming
several schemes at once maps the first and warns; openIdConnect, mutualTLS, digest and the
interactive OAuth2 flows cannot be mapped, which is a warning (add `auth` by hand).
"""

from __future__ import annotations

import re
from typing import Any

from ..reader import join_path
from .refs import Resolver

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^A-Za-z0-9]+")


def env_name(scheme: str) -> str:
    """`marketKey` / `market-key` -> `MARKET_KEY`."""
    name = _NOT_WORD.sub("_", _CAMEL.sub("_", scheme)).strip("_").upper() or "API"
    return name if not name[0].isdigit() else f"_{name}"


class SecurityMapper:
    def __init__(self, resolver: Resolver, document: dict[str, Any]) -> None:
        self.resolver = resolver
        self.default = document.get("security")
        components = document.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, dict) else None
        self.schemes = schemes if isinstance(schemes, dict) else {}

    def auth(
        self, operation: dict[str, Any], path: str, warnings: list[str]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """The auth for an operation and the variables it reads (warnings appended)."""
        where = join_path(path, "security")
        requirements = operation.get("security", self.default)
        if "security" not in operation:
            where = "security"
        if requirements is None or requirements == []:
            return None, []
        if not isinstance(requirements, list) or not all(isinstance(r, dict) for r in requirements):
            raise self.resolver.error(
                where,
                "must be a list of objects (scheme name -> scopes)",
                'Write e.g. security: [{"apiKey": []}].',
            )
        unmapped: list[str] = []
        for requirement in requirements:
            if not requirement:
                continue
            names = list(requirement)
            mapped = self._scheme(names[0], requirement[names[0]], where)
            if mapped is None:
                unmapped.append(names[0])
                continue
            if len(names) > 1:
                warnings.append(
                    f"{path}: needs the schemes {', '.join(names)} together; only {names[0]!r} "
                    "is mapped (add the others' headers by hand)"
                )
            return mapped
        if unmapped and {} not in requirements:
            warnings.append(
                f"{path}: its security scheme(s) {', '.join(unmapped)} cannot be mapped to "
                "api_key, basic or oauth2 client credentials; add `auth` by hand"
            )
        return None, []

    def _scheme(
        self, name: str, scopes: Any, where: str
    ) -> tuple[dict[str, Any], list[str]] | None:
        if name not in self.schemes:
            raise self.resolver.error(
                join_path(where, name),
                f"the security scheme {name!r} is not defined in components.securitySchemes",
                "Define it there, or fix the name.",
            )
        scheme, spath = self.resolver.mapping(
            self.schemes[name], join_path("components.securitySchemes", name), "a security scheme"
        )
        var = env_name(name)
        kind = scheme.get("type")
        if kind == "apiKey":
            location, header = scheme.get("in"), scheme.get("name")
            if location not in ("header", "query", "cookie") or not isinstance(header, str):
                raise self.resolver.error(
                    spath,
                    'an apiKey scheme needs "name" and "in" (header, query or cookie)',
                    'Write e.g. {"type": "apiKey", "in": "header", "name": "X-Api-Key"}.',
                )
            auth = {"auth_type": "api_key", "api_key": f"${{{var}}}", "var_name": header}
            return {**auth, "location": location}, [var]
        if kind == "http":
            http = str(scheme.get("scheme", "")).lower()
            if http == "bearer":
                return {
                    "auth_type": "api_key",
                    "api_key": f"Bearer ${{{var}}}",
                    "var_name": "Authorization",
                    "location": "header",
                }, [var]
            if http == "basic":
                user, password = f"{var}_USERNAME", f"{var}_PASSWORD"
                return {
                    "auth_type": "basic",
                    "username": f"${{{user}}}",
                    "password": f"${{{password}}}",
                }, [user, password]
            return None
        if kind == "oauth2":
            return self._oauth2(scheme, spath, var, scopes)
        return None

    def _oauth2(
        self, scheme: dict[str, Any], path: str, var: str, scopes: Any
    ) -> tuple[dict[str, Any], list[str]] | None:
        flows = scheme.get("flows")
        flow = flows.get("clientCredentials") if isinstance(flows, dict) else None
        if not isinstance(flow, dict):
            return None
        token_url = flow.get("tokenUrl")
        if not isinstance(token_url, str) or "://" not in token_url:
            raise self.resolver.error(
                join_path(path, "flows.clientCredentials.tokenUrl"),
                "must be an absolute URL",
                "Write the token endpoint's full https:// URL.",
            )
        client_id, secret = f"{var}_CLIENT_ID", f"{var}_CLIENT_SECRET"
        auth: dict[str, Any] = {
            "auth_type": "oauth2",
            "token_url": token_url,
            "client_id": f"${{{client_id}}}",
            "client_secret": f"${{{secret}}}",
        }
        if isinstance(scopes, list) and scopes and all(isinstance(s, str) for s in scopes):
            auth["scope"] = " ".join(scopes)
        return auth, [client_id, secret]
