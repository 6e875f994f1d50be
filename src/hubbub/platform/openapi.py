"""The OpenAPI 3.1 document, generated from the route declarations and their msgspec types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

import hubbub
from hubbub.core.errors import HTTP_STATUS, Code
from hubbub.platform.routing import Route


def build(routes: list[Route]) -> dict[str, Any]:
    types: list[Any] = []
    for r in routes:
        if r.body is not None:
            types.append(r.body)
        if r.response is not None:
            types.append(r.response)
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schema_of = dict(zip(types, schemas, strict=True))
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": [c.value for c in Code]},
                    "message": {"type": "string"},
                    "retry_after": {"type": "number"},
                },
            }
        },
    }
    error_response = {
        "description": "error (see docs/protocol.md, Error codes)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    paths: dict[str, Any] = {}
    for r in routes:
        op: dict[str, Any] = {
            "summary": r.summary,
            "operationId": r.handler.__name__,
            "tags": [r.tag] if r.tag else [],
        }
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string" if name == "conv" else "integer"},
            }
            for name in re.findall(r"{(\w+)}", r.path)
        ]
        params += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": desc,
                "schema": {"type": "string"},
            }
            for name, desc in r.query.items()
        ]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[r.body]}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if r.response is not None:
            ok["content"] = {"application/json": {"schema": schema_of[r.response]}}
        op["responses"] = {str(r.status): ok, "default": error_response}
        if r.auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(r.path, {})[r.method.lower()] = op
    paths["/healthz"] = {
        "get": {
            "summary": "Ready to serve",
            "operationId": "healthz",
            "responses": {"200": {"description": "ready"}, "503": error_response},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hubbub",
            "version": hubbub.__version__,
            "description": "Chat server API. The WebSocket protocol (/ws) is in docs/protocol.md. "
            f"Error statuses: {sorted(set(HTTP_STATUS.values()))}.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
