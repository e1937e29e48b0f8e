"""The OpenAPI document: it lists exactly the /api/v1 routes of the route table, each described
(no drift either way), and real answers match the schemas it publishes."""

from __future__ import annotations

import re
from typing import Any

from tests.api_support import Api, demo_ids
from web.middleware.csrf import STATE_CHANGING
from web.openapi import OPERATIONS, openapi_path
from web.routes import ROUTES

SPEC_SECTION_7 = {  # the table of SPEC §7, verbatim
    ("POST", "/api/v1/login"), ("POST", "/api/v1/logout"), ("GET", "/api/v1/me"),
    ("GET", "/api/v1/tickets"), ("POST", "/api/v1/tickets"), ("GET", "/api/v1/tickets/{id}"),
    ("PATCH", "/api/v1/tickets/{id}"), ("POST", "/api/v1/tickets/{id}/close"),
    ("GET", "/api/v1/tickets/{id}/notes"), ("POST", "/api/v1/tickets/{id}/notes"),
    ("GET", "/api/v1/tickets/{id}/charges"), ("POST", "/api/v1/tickets/{id}/charges"),
    ("GET", "/api/v1/tickets/{id}/emails"), ("POST", "/api/v1/tickets/{id}/emails"),
    ("GET", "/api/v1/tickets/{id}/recipients"), ("PUT", "/api/v1/tickets/{id}/recipients"),
    ("GET", "/api/v1/tickets/{id}/attachments"), ("POST", "/api/v1/tickets/{id}/attachments"),
    ("GET", "/api/v1/attachments/{id}"), ("GET", "/api/v1/assets"), ("GET", "/api/v1/contracts"),
    ("GET", "/api/v1/contracts/{id}"), ("GET", "/api/v1/documents"),
    ("GET", "/api/v1/documents/{id}"), ("GET", "/api/v1/kb"), ("GET", "/api/v1/kb/{id}"),
    ("GET", "/api/v1/kb/{id}/files/{file_id}"), ("GET", "/api/v1/quotes"),
    ("POST", "/api/v1/quotes/{id}/accept"), ("POST", "/api/v1/me/password"),
    ("GET", "/api/v1/me/alerts"), ("PUT", "/api/v1/me/alerts"), ("GET", "/api/v1/openapi.json"),
}


# -- a small JSON-Schema checker: the keywords the document uses, nothing more ----------------

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


# -- the tests --------------------------------------------------------------------------------


async def test_document_lists_exactly_the_route_table(demo_client):
    # public: no login needed to discover the API
    resp = await demo_client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routed = {(r.method, openapi_path(r.path)) for r in ROUTES if r.path.startswith("/api/v1/")}
    assert documented == routed
    # every route is described, and every description belongs to a route
    assert set(OPERATIONS) == routed
    assert routed >= SPEC_SECTION_7

    by_key = {(r.method, openapi_path(r.path)): r for r in ROUTES}
    refs: set[str] = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            route = by_key[(method.upper(), path)]
            assert "x-undocumented" not in op, (method, path)
            assert op["summary"] and op["responses"], (method, path)
            assert any(s.startswith("2") for s in op["responses"]), (method, path)
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == set(re.findall(r"\{(\w+)\}", path)), (method, path)
            if route.public:
                assert op["security"] == [], (method, path)
            else:
                expected = ([{"session": [], "csrf": []}] if method.upper() in STATE_CHANGING
                            else [{"session": []}])
                assert op["security"] == expected, (method, path)
                assert {"401", "403"} <= set(op["responses"]), (method, path)
                access = route.access
                if access and access.privilege:
                    assert op["x-portald-access"]["privilege"] == "=".join(access.privilege)
                if access and access.employee_right:
                    assert op["x-portald-access"]["employee_right"] == "=".join(access.employee_right)
            if "{" in path:
                assert "404" in op["responses"], (method, path)
            refs |= set(re.findall(r'"#/components/schemas/(\w+)"', str(op).replace("'", '"')))
    schemas = doc["components"]["schemas"]
    assert refs <= set(schemas)
    for schema in schemas.values():
        refs |= set(re.findall(r'"#/components/schemas/(\w+)"', str(schema).replace("'", '"')))
    assert refs <= set(schemas), refs - set(schemas)
    assert set(doc["components"]["securitySchemes"]) == {"session", "csrf"}


async def test_real_answers_match_the_schemas(demo_client, users, demo_db):
    doc = await (await demo_client.get("/api/v1/openapi.json")).json()
    ids = await demo_ids(demo_db)
    customer: Api = await users.login("full@acme")
    tech: Api = await users.login("tech")
    main = ids["t_acme_main"]
    t = "/api/v1/tickets/{id}"

    for api in (customer, tech):
        assert_matches(doc, "GET", "/api/v1/me", await api.get("/api/v1/me"))
        assert_matches(doc, "GET", "/api/v1/tickets", await api.get("/api/v1/tickets", limit=2))
        assert_matches(doc, "GET", t, await api.get(f"/api/v1/tickets/{main}"))
        for sub in ("notes", "charges", "emails", "attachments"):
            assert_matches(doc, "GET", f"{t}/{sub}", await api.get(f"/api/v1/tickets/{main}/{sub}"))
        for path in ("/api/v1/assets", "/api/v1/contracts", "/api/v1/documents", "/api/v1/kb",
                     "/api/v1/quotes"):
            assert_matches(doc, "GET", path, await api.get(path))
    assert_matches(doc, "GET", f"{t}/recipients", await tech.get(f"/api/v1/tickets/{main}/recipients"))
    assert_matches(doc, "GET", "/api/v1/me/alerts", await tech.get("/api/v1/me/alerts"))

    created = await customer.post("/api/v1/tickets", {"description": "schema check"})
    assert_matches(doc, "POST", "/api/v1/tickets", created)
    new = created.body["id"]
    assert_matches(doc, "PATCH", t, await customer.patch(f"/api/v1/tickets/{new}", {"priority": "low"}))
    assert_matches(doc, "POST", f"{t}/notes",
                   await customer.post(f"/api/v1/tickets/{new}/notes", {"body": "n"}))
    assert_matches(doc, "POST", f"{t}/attachments", await customer.upload(new))
    for body in ({"kind": "labor", "hours": "1"}, {"kind": "expense", "amount": "2.50"},
                 {"kind": "part", "quantity": "2", "unit_price": "3"}):
        check(body, doc["components"]["schemas"]["NewCharge"], doc)  # the request schemas fit too
        assert_matches(doc, "POST", f"{t}/charges", await tech.post(f"/api/v1/tickets/{new}/charges", body))
    assert_matches(doc, "POST", f"{t}/emails",
                   await tech.post(f"/api/v1/tickets/{new}/emails", {"subject": "s", "body": "b"}))
    assert_matches(doc, "PUT", f"{t}/recipients",
                   await tech.put(f"/api/v1/tickets/{new}/recipients", {"employee_ids": [ids["tech"]]}))
    assert_matches(doc, "POST", f"{t}/close", await tech.post(f"/api/v1/tickets/{new}/close", {}))

    # errors: the documented statuses, in the documented shape
    assert_matches(doc, "POST", f"{t}/close", await tech.post(f"/api/v1/tickets/{new}/close", {}))  # 409
    assert_matches(doc, "GET", t, await customer.get(f"/api/v1/tickets/{10**12}"))  # 404
    assert_matches(doc, "POST", "/api/v1/tickets", await customer.post("/api/v1/tickets", {}))  # 422
    limited = await users.login("limited@acme")
    assert_matches(doc, "GET", f"{t}/charges", await limited.get(f"/api/v1/tickets/{main}/charges"))  # 403
    assert_matches(doc, "GET", "/api/v1/tickets", await limited.get("/api/v1/tickets", limit=500))  # 422
    resp = await demo_client.get("/api/v1/tickets")
    check(await resp.json(), response_schema(doc, "GET", "/api/v1/tickets", resp.status), doc)  # 401
    # a broken answer does not pass the checker
    try:
        check({"items": [{"id": "1"}], "next_cursor": None, "next": None},
              response_schema(doc, "GET", "/api/v1/tickets", 200), doc)
    except SchemaMismatch:
        pass
    else:
        raise AssertionError("the checker accepted a ticket without its required fields")
