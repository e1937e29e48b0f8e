"""The OpenAPI document built from the route table without a server, and a small JSON-Schema
checker: the keywords the document uses, nothing more."""

from __future__ import annotations

import re
from typing import Any

from web.middleware.access import Access, RouteSpec
from web.openapi import build_document
from web.routes import ROUTES


def document() -> dict:
    """The document the portal serves, from its route table and each route's access."""
    return build_document([(r.method, r.path, r.name, RouteSpec(public=r.public, access=r.access or Access()))
                           for r in ROUTES])


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


class SchemaMismatch(AssertionError):
    pass


def check(value: Any, schema: dict, doc: dict, where: str = "$") -> None:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return check(value, doc["components"]["schemas"][name], doc, where)
    for sub in schema.get("allOf", []):
        check(value, sub, doc, where)
    if "oneOf" in schema:
        fits = 0
        for sub in schema["oneOf"]:
            try:
                check(value, sub, doc, where)
                fits += 1
            except SchemaMismatch:
                pass
        if fits != 1:
            raise SchemaMismatch(f"{where}: matches {fits} of oneOf")
    if "const" in schema and value != schema["const"]:
        raise SchemaMismatch(f"{where}: {value!r} is not {schema['const']!r}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any((t == "integer" and isinstance(value, int) and not isinstance(value, bool))
                 or (t == "number" and isinstance(value, int | float) and not isinstance(value, bool))
                 or (t in _TYPES and isinstance(value, _TYPES[t])) for t in types)
        if not ok:
            raise SchemaMismatch(f"{where}: {value!r} is not {types}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaMismatch(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        raise SchemaMismatch(f"{where}: {value!r} does not match {schema['pattern']}")
    if (isinstance(value, int) and not isinstance(value, bool) and "minimum" in schema
            and value < schema["minimum"]):
        raise SchemaMismatch(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaMismatch(f"{where}: missing {key!r}")
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                check(item, props[key], doc, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                raise SchemaMismatch(f"{where}: unexpected {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                check(item, schema["additionalProperties"], doc, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], doc, f"{where}[{i}]")


def response_schema(doc: dict, method: str, path: str, status: int) -> dict:
    op = doc["paths"][path][method.lower()]
    assert str(status) in op["responses"], (method, path, status, "undocumented status")
    return op["responses"][str(status)]["content"]["application/json"]["schema"]


def assert_matches(doc: dict, method: str, path: str, reply: Any) -> None:
    check(reply.body, response_schema(doc, method, path, reply.status), doc,
          f"{method} {path} {reply.status}")
