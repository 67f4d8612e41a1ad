"""Realistic OpenAPI documents with event streams, for the import tests (servers on loopback).

- `completions`: 3.2, an LLM completion API: POST with a JSON body, bearer auth, a header
  parameter, `itemSchema` whose data is JSON chunks or the `[DONE]` terminator; plus a plain
  JSON operation that must be skipped.
- `market_data`: 3.1, API-key header auth, a path and a query parameter, events typed in
  `itemSchema` variants, parameters and responses by `$ref`, a PUT stream the bridge cannot open.
- `notifications`: 3.0, OAuth2 client credentials, `nullable`, a cookie parameter, no
  `itemSchema` (3.0 has none) but a `text/event-stream` response with parameters.
"""

from __future__ import annotations

from typing import Any


def completions(base: str) -> dict[str, Any]:
    chunk = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "delta": {"type": "string"}},
    }
    return {
        "openapi": "3.2.0",
        "info": {"title": "Completion API", "version": "2.1.0"},
        "servers": [
            {
                "url": "{scheme}://{host}/v1",
                "variables": {
                    "scheme": {"default": "http"},
                    "host": {"default": base.split("://")[1]},
                },
            }
        ],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/completions": {
                "post": {
                    "operationId": "createCompletion",
                    "summary": "Stream a completion",
                    "description": "Tokens arrive as chunks.",
                    "parameters": [
                        {"name": "X-Request-Id", "in": "header", "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CompletionRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "chunks",
                            "content": {
                                "text/event-stream": {
                                    "itemSchema": {
                                        "type": "object",
                                        "required": ["data"],
                                        "properties": {
                                            "data": {
                                                "oneOf": [
                                                    {
                                                        "contentMediaType": "application/json",
                                                        "contentSchema": chunk,
                                                    },
                                                    {"const": "[DONE]"},
                                                ]
                                            }
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/models": {
                "get": {
                    "operationId": "listModels",
                    "responses": {"200": {"content": {"application/json": {"schema": {}}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "CompletionRequest": {
                    "type": "object",
                    "required": ["model", "prompt"],
                    "properties": {
                        "model": {"type": "string", "enum": ["small", "large"]},
                        "prompt": {"type": "string", "maxLength": 10000},
                        "stop": {"$ref": "#/components/schemas/Stop"},
                    },
                },
                "Stop": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
            },
        },
    }


def market_data(base: str) -> dict[str, Any]:
    def variant(name: str, schema: str) -> dict[str, Any]:
        return {
            "properties": {
                "event": {"const": name},
                "data": {
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": f"#/components/schemas/{schema}"},
                },
            }
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "Market Data", "version": "1.4.0"},
        "servers": [{"url": base}],
        "security": [{"marketKey": []}],
        "paths": {
            "/prices/{symbol}": {
                "parameters": [{"$ref": "#/components/parameters/Symbol"}],
                "get": {
                    "operationId": "streamPrices",
                    "summary": "Live prices and trades for one symbol",
                    "parameters": [
                        {
                            "name": "depth",
                            "in": "query",
                            "description": "Order book levels",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10},
                        }
                    ],
                    "responses": {"200": {"$ref": "#/components/responses/PriceStream"}},
                },
                "put": {
                    "operationId": "replacePrices",
                    "responses": {"200": {"$ref": "#/components/responses/PriceStream"}},
                },
            },
            "/symbols": {"get": {"responses": {"200": {"content": {"application/json": {}}}}}},
        },
        "components": {
            "securitySchemes": {
                "marketKey": {"type": "apiKey", "in": "header", "name": "X-Market-Key"}
            },
            "parameters": {
                "Symbol": {
                    "name": "symbol",
                    "in": "path",
                    "required": True,
                    "description": "Ticker symbol, e.g. AAPL",
                    "schema": {"type": "string", "pattern": "^[A-Z]{1,5}$"},
                }
            },
            "responses": {
                "PriceStream": {
                    "description": "prices",
                    "content": {
                        "text/event-stream": {
                            "itemSchema": {
                                "type": "object",
                                "oneOf": [variant("price", "Price"), variant("trade", "Trade")],
                            }
                        }
                    },
                }
            },
            "schemas": {
                "Price": {
                    "type": "object",
                    "properties": {"symbol": {"type": "string"}, "price": {"type": "number"}},
                },
                "Trade": {
                    "type": "object",
                    "properties": {"symbol": {"type": "string"}, "size": {"type": "integer"}},
                },
            },
        },
    }


def notifications(base: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Notifications", "version": "3.0.0"},
        "servers": [{"url": f"{base}/api"}],
        "paths": {
            "/notifications/stream": {
                "get": {
                    "operationId": "streamNotifications",
                    "description": "Notifications for the account, as they happen.",
                    "security": [{"oauth": ["notifications:read"]}],
                    "parameters": [
                        {
                            "name": "channel",
                            "in": "query",
                            "schema": {"type": "string", "nullable": True, "enum": ["a", "b"]},
                        },
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "notifications",
                            "content": {
                                "text/event-stream; charset=utf-8": {"schema": {"type": "string"}}
                            },
                        }
                    },
                }
            }
        },
        "components": {
            "securitySchemes": {
                "oauth": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": f"{base}/oauth/token",
                            "scopes": {"notifications:read": "read"},
                        }
                    },
                }
            }
        },
    }
