"""The whole OpenAPI document, tried property-based (schemathesis) against a running daemon on
the demo data, for each kind of logged-in user: a customer, a subcontractor and an
administrator. For data that fits the document and data that does not, no answer is a 5xx, and
every answer is one the document describes (status, media type, schema). Bounded in examples
per operation and in time; the number of requests it made is printed at the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from http.cookiejar import DefaultCookiePolicy

import hypothesis
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from daemon.db.embedded import free_port
from daemon.dev.demo_data import DEMO_PASSWORD
from tests.support.config import portal_sections, write_config
from tests.support.daemon import start_daemon, wait_healthy
from tests.support.db import clone

PRINCIPALS = ("full@acme", "sub1", "admin")  # a customer, a subcontractor, an administrator
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}  # per operation and mode
TIME_BUDGET_S = 100  # per principal: a bound, not a goal; past it no new operation starts
# logging out would end the session the rest of the run uses
SKIPPED = {("POST", "/api/v1/logout")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


class CountingSession(requests.Session):
    """Counts the requests made; keeps no cookie (the principal's is sent with each one)."""

    def __init__(self) -> None:
        super().__init__()
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.count = 0

    def request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - requests' own signature
        self.count += 1
        return super().request(*args, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def daemon_url(tmp_path_factory: pytest.TempPathFactory, pg_server: str,
                     demo_template_dsn: str) -> AsyncIterator[str]:
    """One daemon on one clone of the demo data for the three runs."""
    directory = tmp_path_factory.mktemp("properties")
    async with clone(pg_server, demo_template_dsn, "properties") as dsn:
        port = free_port()
        sections = portal_sections(directory, dsn, free_port(), http_port=port)
        sections["http"]["login_attempts_per_15min"] = 1000  # the run tries many wrong logins
        sections["log"] = {"level": "WARNING"}
        proc = await start_daemon(write_config(directory / "config.toml", sections))
        try:
            await wait_healthy(port, proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
            log = (await proc.stderr.read()).decode()
            assert "Traceback" not in log, log


def _login(base: str, username: str) -> dict[str, str]:
    resp = requests.post(f"{base}/api/v1/login", json={"username": username,
                                                       "password": DEMO_PASSWORD}, timeout=30)
    assert resp.status_code == 200, resp.text
    cookie = "; ".join(f"{c.name}={c.value}" for c in resp.cookies)
    return {"Cookie": cookie, "X-CSRF-Token": resp.json()["csrf_token"]}


def _run_operation(operation, session: CountingSession, headers: dict[str, str],
                   mode: GenerationMode) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @hypothesis.settings(max_examples=EXAMPLES[mode], deadline=None, database=None,
                         derandomize=True, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck), print_blob=True)
    @hypothesis.given(case=strategy)
    def test(case) -> None:
        response = case.call(session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    test()


@pytest.mark.parametrize("username", PRINCIPALS)
@pytest.mark.asyncio(loop_scope="session")
async def test_the_whole_document_holds_for(daemon_url: str, username: str) -> None:
    # requests and hypothesis block: in a thread, so that the daemon's log keeps flowing
    await asyncio.to_thread(_run_all, daemon_url, username)


def _run_all(daemon_url: str, username: str) -> None:
    schema = schemathesis.openapi.from_url(f"{daemon_url}/api/v1/openapi.json")
    headers = _login(daemon_url, username)
    session = CountingSession()
    started, tried = time.monotonic(), 0
    operations = [r.ok() for r in schema.get_all_operations()]
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        if time.monotonic() - started > TIME_BUDGET_S:
            break
        for mode in EXAMPLES:
            _run_operation(operation, session, headers, mode)
        tried += 1
    # the session must still be alive: every operation was tried as this user
    assert requests.get(f"{daemon_url}/api/v1/me", headers=headers, timeout=30).status_code == 200
    print(f"\nschemathesis as {username}: {session.count} requests over {tried} of "
          f"{len(operations)} operations in {time.monotonic() - started:.0f} s")
    assert tried == len(operations) - len(SKIPPED), "the time budget ran out"
