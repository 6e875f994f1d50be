"""The OpenAPI 3.1 document, generated from the route declarations and their msgspec types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

import hubbub
from hubbub.core.errors import HTTP_STATUS, Code
from hubbub.core.ids import MAX_ID, MAX_SEQ
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
            {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
            for name in re.findall(r"{(\w+)}", r.path)
        ]
        params += [
            {
                "name": name,
                "in": "query",
                "required": "(required)" in desc,
                "description": desc,
                "schema": _query_schema(name, desc),
            }
            for name, desc in r.query.items()
        ]
        if params:
            op["parameters"] = params
        if r.body is not None:
            # A body whose fields all have defaults may be left out (it is read as {}).
            required = any(f.required for f in msgspec.structs.fields(r.body))
            op["requestBody"] = {
                "required": required,
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


#: What the routes accept in their path (routing.Ctx.path_int, core/ids.py, core/convs.py, services/media.py):
#: schema fuzzers (schemathesis) then generate what the server takes, and clients see the real shape. Ids have
#: one spelling: no leading zero (the pattern cannot say low < high for ``p:``; the server checks it).
_ID = "[1-9][0-9]{0,9}"
_CONV = rf"^(p:{_ID}:{_ID}|g:{_ID})$"


def _path_schema(name: str) -> dict[str, Any]:
    if name == "conv":
        return {"type": "string", "pattern": _CONV}
    if name == "upload_id":
        return {"type": "string", "pattern": "^[0-9a-f]{32}$"}
    if name == "seq":
        return {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def _query_schema(name: str, description: str) -> dict[str, Any]:
    """Integers for the paging parameters, with the range their description states ("1-200, default 50")."""
    if name in ("limit", "after", "after_seq", "before_seq"):
        high = MAX_ID if name == "after" else MAX_SEQ  # "after" pages by user id
        schema: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": high}
        if found := re.search(r"(\d+)-(\d+)", description):
            schema["minimum"], schema["maximum"] = int(found.group(1)), int(found.group(2))
        return schema
    if found := re.search(r"(\d+)-(\d+) characters", description):
        return {"type": "string", "minLength": int(found.group(1)), "maxLength": int(found.group(2))}
    return {"type": "string"}
