"""/healthz, /readyz and /metrics through HTTP."""

from __future__ import annotations


async def test_healthz_answers(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_readyz_checks_the_database(client) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["database"] == "ok"


async def test_metrics_are_prometheus_text(client) -> None:
    await client.get("/healthz")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'portald_http_requests_total{route="healthz",status="200"}' in text


async def test_unknown_api_path_has_the_error_shape(client) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
