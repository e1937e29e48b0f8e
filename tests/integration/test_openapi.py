"""The OpenAPI document as served: the one built from the route table (whose contents
tests/unit/test_openapi.py checks), and real answers match the schemas it publishes."""

from __future__ import annotations

import json

from tests.support.api import Api, demo_ids
from tests.support.schema import SchemaMismatch, assert_matches, check, document, response_schema

# -- the tests --------------------------------------------------------------------------------


async def test_the_served_document_is_the_route_tables(demo_client):
    # public: no login needed to discover the API
    resp = await demo_client.get("/api/v1/openapi.json")
    assert resp.status == 200
    # what tests/unit/test_openapi.py checks, built from the route table, is what is served
    assert await resp.json() == json.loads(json.dumps(document()))


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


async def test_me_carries_the_users_email(demo_client, users, demo_db):
    me = (await (await demo_client.get("/api/v1/openapi.json")).json())["components"]["schemas"]["Me"]
    assert "email" in me["required"] and me["properties"]["email"]["type"] == "string"
    customer: Api = await users.login("full@acme")
    tech: Api = await users.login("tech")
    assert (await customer.get("/api/v1/me")).body["email"] == "alice@acme.example"
    assert (await tech.get("/api/v1/me")).body["email"] == "tech@msp.example"
    # the login answer is the same document
    login = await demo_client.post("/api/v1/login", json={"username": "tech", "password": "demo"})
    assert (await login.json())["email"] == "tech@msp.example"
    # a changed address shows at the next request, like every change to a user
    await demo_db.execute("UPDATE customer_web_users SET email = 'a.anders@acme.example' "
                          "WHERE username = 'full@acme'")
    await demo_db.execute("UPDATE employees SET email = 'toby@msp.example' WHERE username = 'tech'")
    assert (await customer.get("/api/v1/me")).body["email"] == "a.anders@acme.example"
    assert (await tech.get("/api/v1/me")).body["email"] == "toby@msp.example"
