"""The OpenAPI 3.1 document of the JSON API, served at `GET /api/v1/openapi.json`.

The list of operations is not written twice: the document is built from the application's
route table (web/routes.py), so every /api/v1 route appears, with the security and privilege
its `Access` declares. What a route's answer looks like is described here, in
`OPERATIONS`, with the schemas of web/openapi_schemas.py; what it takes (bodies, query
parameters) comes from the request models of web/schemas/; a route without a description is published marked `x-undocumented` and fails
tests/test_openapi.py, as does a description without a route.

The document is public: it describes the contract (SPEC §7), not data, and a client needs it
to find the login before it has a session.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from web.middleware.access import ROUTE_SPECS, Access, RouteSpec
from web.middleware.csrf import STATE_CHANGING
from web.openapi_schemas import ID, JSON, SCHEMAS, items_of, offset_page_of, ref
from web.schemas import REQUEST_MODELS, PageQuery, TicketQuery
from web.sessions import COOKIE_NAME

API_PREFIX = "/api/v1/"
VERSION = "1.0.0"


def query(name: str, schema: JSON, description: str) -> JSON:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _model_schema(model: type[BaseModel]) -> JSON:
    return model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")


@functools.cache
def request_components() -> dict[str, JSON]:
    """The JSON Schemas of the request models (web/schemas/), by component name."""
    out: dict[str, JSON] = {}
    for name, model in REQUEST_MODELS.items():
        schema = _model_schema(model)
        out.update(schema.pop("$defs", {}))
        schema["title"] = name
        out[name] = schema
    return out


def query_parameters(model: type[BaseModel]) -> tuple[JSON, ...]:
    """The query parameters a query model takes, each with its schema and description."""
    schema = _model_schema(model)
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", "")
        # a query string cannot say null: an absent parameter is the model's None
        branches = [b for b in prop.pop("anyOf", []) if b != {"type": "null"}]
        if branches:
            prop.update(branches[0])
        if prop.get("default", "") is None:
            del prop["default"]
        params.append(query(name, prop, description))
    return tuple(params)


PAGE = query_parameters(PageQuery)


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers, beyond what its `Access` already says."""

    summary: str
    response: JSON | None = None  # the schema of the success answer (JSON)
    status: int = 200
    request: JSON | None = None  # the schema of a JSON body
    body_optional: bool = False
    multipart: JSON | None = None  # the schema of a multipart/form-data body
    download: bool = False  # the answer is a file, sent as an attachment
    parameters: tuple[JSON, ...] = ()
    errors: tuple[int, ...] = ()  # answers beyond those derived from the route
    description: str = ""
    extra: JSON = field(default_factory=dict)


OPERATIONS: dict[tuple[str, str], Operation] = {
    # -- session (web/views/api/auth.py) --
    ("POST", "/api/v1/login"): Operation(
        "Log in: starts a session (cookie) and answers who you are with the CSRF token",
        {"oneOf": [ref("Me"), ref("TotpRequired")]}, request=ref("Login"), errors=(401, 429),
        description="Wrong user and wrong password get the same 401. Throttled per user and address (429 with Retry-After). "
                    "For a user with two-factor login on, the answer is {\"totp_required\": true}, no session yet, "
                    "and a pending-login cookie that POST /api/v1/login/totp completes."),
    ("POST", "/api/v1/login/totp"): Operation(
        "Second step of a login with two-factor on: a current TOTP code or an unused recovery code",
        ref("Me"), request=ref("TotpCode"), errors=(401, 429),
        description="Needs the pending-login cookie of POST /api/v1/login (valid a few minutes, one use). "
                    "A wrong or used code and an expired pending login get the same 401; throttled like passwords."),
    ("GET", "/api/v1/me/totp"): Operation(
        "Your two-factor login: on, set-up begun, required by your group, recovery codes left",
        ref("TotpStatus")),
    ("POST", "/api/v1/me/totp/setup"): Operation(
        "Begin setting up two-factor login: a new secret and its otpauth:// URI, on once confirmed",
        ref("TotpSetup"), errors=(409,), description="409 when two-factor login is already on."),
    ("POST", "/api/v1/me/totp/confirm"): Operation(
        "Confirm the set-up with a first code: two-factor is on, your other sessions end, and the "
        "ten recovery codes are answered this once", ref("RecoveryCodes"), request=ref("TotpCode")),
    ("POST", "/api/v1/me/totp/recovery-codes"): Operation(
        "Ten new recovery codes in place of the old ones (needs a current code)",
        ref("RecoveryCodes"), request=ref("TotpCode"), errors=(429,)),
    ("POST", "/api/v1/me/totp/disable"): Operation(
        "Turn two-factor login off (needs a current code); ends your other sessions", ref("Status"),
        request=ref("TotpCode"), errors=(429,),
        description="403 when your employee group requires two-factor login."),
    ("POST", "/api/v1/logout"): Operation("Log out: ends the session", ref("Status")),
    ("GET", "/api/v1/me"): Operation(
        "Who am I: id, username, email, kind, group, effective privileges, CSRF token", ref("Me")),
    ("POST", "/api/v1/me/password"): Operation(
        "Change your own password; ends your other sessions", ref("Status"),
        request=ref("PasswordChange"), errors=(429,)),
    ("GET", "/api/v1/me/alerts"): Operation("An employee's own alert and recipient settings",
                                             ref("MailSettings")),
    ("PUT", "/api/v1/me/alerts"): Operation(
        "Change some of your alert and recipient settings; answers all of them",
        ref("MailSettings"), request=ref("MailSettingsChange")),
    # -- tickets (web/views/api/tickets.py) --
    ("GET", "/api/v1/tickets"): Operation(
        "Tickets in scope, newest first, one page at a time", ref("TicketPage"),
        parameters=query_parameters(TicketQuery), errors=(422,)),
    ("POST", "/api/v1/tickets"): Operation("Create a ticket", ref("Ticket"), status=201,
                                           request=ref("NewTicket")),
    ("GET", "/api/v1/tickets/{id}"): Operation("One ticket", ref("Ticket")),
    ("PATCH", "/api/v1/tickets/{id}"): Operation(
        "Change a ticket's description, priority, asset (and, employees: status, assignee)",
        ref("Ticket"), request=ref("TicketChange")),
    ("POST", "/api/v1/tickets/{id}/close"): Operation(
        "Close a ticket, optionally with a closing note", ref("Ticket"), request=ref("Close"),
        body_optional=True, errors=(409,), description="409 when the ticket is already closed."),
    ("GET", "/api/v1/tickets/{id}/notes"): Operation(
        "History notes (own-data employees: only their own)", items_of(ref("Note"))),
    ("POST", "/api/v1/tickets/{id}/notes"): Operation("Add a history note", ref("Note"),
                                                      status=201, request=ref("NewNote")),
    ("GET", "/api/v1/tickets/{id}/charges"): Operation(
        "Charges (own-data employees: only their own)", items_of(ref("Charge"))),
    ("POST", "/api/v1/tickets/{id}/charges"): Operation(
        "Log a labor, expense or part charge", ref("Charge"), status=201, request=ref("NewCharge")),
    ("GET", "/api/v1/tickets/{id}/emails"): Operation(
        "Emails filed under the ticket (customers: public ones only)", items_of(ref("Email"))),
    ("POST", "/api/v1/tickets/{id}/emails"): Operation("File an email under the ticket",
                                                       ref("Email"), status=201, request=ref("NewEmail")),
    ("GET", "/api/v1/tickets/{id}/recipients"): Operation(
        "Employees who get the ticket's mail", items_of(ref("Recipient"))),
    ("PUT", "/api/v1/tickets/{id}/recipients"): Operation(
        "Replace the ticket's recipients", items_of(ref("Recipient")), request=ref("RecipientsChange")),
    ("GET", "/api/v1/tickets/{id}/attachments"): Operation(
        "Files of the ticket (customers: public ones; own-data employees: their own)",
        items_of(ref("Attachment"))),
    ("POST", "/api/v1/tickets/{id}/attachments"): Operation(
        "Upload a file to the ticket", ref("Attachment"), status=201, multipart=ref("Upload"),
        description="413 as soon as the file passes the configured size limit."),
    ("GET", "/api/v1/attachments/{id}"): Operation(
        "Download an attachment (audited)", download=True),
    ("GET", "/api/v1/openapi.json"): Operation("This document", {"type": "object"}),
    # -- account data (web/views/api/account.py) --
    ("GET", "/api/v1/assets"): Operation("The account's assets", offset_page_of(ref("Asset")),
                                         parameters=PAGE, errors=(422,)),
    ("GET", "/api/v1/contracts"): Operation("The account's contracts", offset_page_of(ref("Contract")),
                                            parameters=PAGE, errors=(422,)),
    ("GET", "/api/v1/contracts/{id}"): Operation("One contract, with its charges where allowed",
                                                 ref("ContractDetail")),
    ("GET", "/api/v1/documents"): Operation("The account's documents (customers: public ones)",
                                            offset_page_of(ref("Document")),
                                            parameters=PAGE, errors=(422,)),
    ("GET", "/api/v1/documents/{id}"): Operation("Download a document (audited)", download=True),
    ("GET", "/api/v1/kb"): Operation("Knowledge-base articles (customers: public ones)",
                                     offset_page_of(ref("KbArticleSummary")),
                                     parameters=PAGE, errors=(422,)),
    ("GET", "/api/v1/kb/{id}"): Operation("One article, with its files where allowed", ref("KbArticle")),
    ("GET", "/api/v1/kb/{id}/files/{file_id}"): Operation("Download a file of an article (audited)",
                                                          download=True),
    ("GET", "/api/v1/quotes"): Operation("The account's quotes", offset_page_of(ref("Quote")),
                                         parameters=PAGE, errors=(422,)),
    ("POST", "/api/v1/quotes/{id}/accept"): Operation(
        "Accept a quote (once; records who and when)", ref("Quote"), errors=(409,),
        description="409 when the quote is already accepted, declined or expired."),
}

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def openapi_path(path: str) -> str:
    """An aiohttp path (`/x/{id:\\d+}`) as OpenAPI writes it (`/x/{id}`)."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _error(description: str) -> JSON:
    return {"description": description,
            "content": {"application/json": {"schema": ref("Error")}}}


_ERROR_TEXT = {
    400: "malformed JSON or multipart body, or not a JSON object",
    401: "not logged in",
    403: "the user's privileges do not allow this, or the CSRF token is missing or wrong",
    404: "not found, or outside the user's scope (the two look alike)",
    409: "conflict with the current state",
    413: "the body or file is larger than allowed",
    415: "the body is not of the required media type",
    422: "a field is missing or invalid; `error.field` names it",
    429: "too many attempts; see Retry-After",
    503: "the database or the password hashing is busy or out of reach; see Retry-After",
}


def _access_text(access: Access) -> tuple[str, JSON]:
    who = {"any": "any logged-in user", "customer": "customers only",
           "employee": "employees only"}[access.kind]
    parts, ext = [who], {"kind": access.kind}
    if access.privilege:
        parts.append(f"customers need {access.privilege[0]}={access.privilege[1]}")
        ext["privilege"] = f"{access.privilege[0]}={access.privilege[1]}"
    if access.employee_right:
        parts.append(f"employees need {access.employee_right[0]}={access.employee_right[1]}")
        ext["employee_right"] = f"{access.employee_right[0]}={access.employee_right[1]}"
    if access.admin:
        parts.append("administrators only")
        ext["admin"] = True
    return "; ".join(parts), ext


def operation_object(method: str, path: str, spec: RouteSpec, name: str) -> JSON:
    op = OPERATIONS.get((method, path))
    documented = op is not None
    op = op or Operation("(not described)")
    responses: JSON = {}
    if op.download:
        responses["200"] = {
            "description": "the file, as an attachment with a safe file name",
            "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
            # sent with the type the file was stored with (text/plain, image/png, …)
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
    else:
        responses[str(op.status)] = {"description": op.summary, "content": {
            "application/json": {"schema": op.response or {"type": "object"}}}}
    codes = set(op.errors)
    if op.request is not None:
        codes |= {400, 413, 415, 422}
    if op.multipart is not None:
        codes |= {400, 413, 415, 422}
    if not spec.public:
        codes |= {401, 403}
    if "{" in path:
        codes.add(404)
    codes.add(503)
    for code in sorted(codes):
        responses[str(code)] = _error(_ERROR_TEXT[code])
    obj: JSON = {"operationId": name, "summary": op.summary, "responses": responses,
                 "tags": [path.removeprefix(API_PREFIX).split("/")[0]]}
    description = [op.description] if op.description else []
    if spec.public:
        obj["security"] = []
        description.append("No login needed.")
    else:
        text, ext = _access_text(spec.access)
        description.append(f"Who: {text}.")
        obj["x-portald-access"] = ext
        obj["security"] = ([{"session": [], "csrf": []}] if method in STATE_CHANGING
                           else [{"session": []}])
    obj["description"] = " ".join(description)
    params = [{"name": n, "in": "path", "required": True, "schema": ID}
              for n in _PARAM.findall(path)]
    params += list(op.parameters)
    if params:
        obj["parameters"] = params
    if op.request is not None:
        obj["requestBody"] = {"required": not op.body_optional,
                              "content": {"application/json": {"schema": op.request}}}
    elif op.multipart is not None:
        obj["requestBody"] = {"required": True,
                              "content": {"multipart/form-data": {"schema": op.multipart}}}
    if not documented:
        obj["x-undocumented"] = True
    obj.update(op.extra)
    return obj


def build_document(routes: Iterable[tuple[str, str, str, RouteSpec]]) -> JSON:
    """The document for (method, path, name, spec) routes; only /api/v1 ones are included."""
    paths: JSON = {}
    for method, raw_path, name, spec in routes:
        path = openapi_path(raw_path)
        if not path.startswith(API_PREFIX):
            continue
        paths.setdefault(path, {})[method.lower()] = operation_object(method, path, spec, name)
    return {
        "openapi": "3.1.0",
        "info": {"title": "portald JSON API", "version": VERSION,
                 "description": "Tickets and account data for customers and employees (SPEC §7). "
                                "Log in with POST /api/v1/login; the session is a cookie. Every "
                                "state-changing request sends the login answer's csrf_token in "
                                "the X-CSRF-Token header. Errors: {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**SCHEMAS, **request_components()},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME,
                            "description": "the session cookie set by POST /api/v1/login "
                                           "(named __Host-portald_session behind https)"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "the csrf_token of the login answer or GET /api/v1/me"}}},
    }


def app_routes(app: web.Application) -> list[tuple[str, str, str, RouteSpec]]:
    """The application's routes with their declared access (as the middleware sees them)."""
    specs: dict[web.AbstractRoute, RouteSpec] = app[ROUTE_SPECS]
    return [(route.method, route.resource.canonical, route.name or "", spec)
            for route, spec in specs.items() if route.resource is not None]


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_document(app_routes(request.app)),
                             headers={"Cache-Control": "public, max-age=300"})
