"""The OpenAPI document, built from the route table: it lists exactly the /api/v1 routes, each
described (no drift either way), with the security and privilege each route's Access declares,
and every schema it refers to."""

from __future__ import annotations

import re

from tests.support.schema import document
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



def test_document_lists_exactly_the_route_table() -> None:
    doc = document()
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
