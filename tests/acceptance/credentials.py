"""The credentials the acceptance tests give the bridge, so that every check can look for them.

Each is a value no result, error, progress message or log may show.
"""

from __future__ import annotations

SECRET = "sk-acceptance-7f3e9d1c55"
CLIENT_SECRET = "cs-accept3-90ab77e1f3"
ENV = {"API_KEY": SECRET}
AUTH = {"auth_type": "api_key", "api_key": "${API_KEY}", "var_name": "X-Api-Key"}
