"""Every route of the portal in one table, and the web layer's set-up.

Each route says who may use it; the access middleware (web/middleware/access.py) enforces that
before the handler runs, so a new route cannot forget its privilege or scope check.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from daemon.appkeys import CAUGHT_MAIL
from web import openapi
from web.files import safe_filename
from web.form_fields import FORM_FILTERS, FormFields
from web.login import setup_hashing
from web.middleware.access import (
    ACCESS_BY_NAME,
    ROUTE_SPECS,
    Access,
    RouteSpec,
    access_middleware,
)
from web.middleware.csrf import csrf_middleware
from web.middleware.errors import error_middleware
from web.middleware.headers import setup_headers
from web.middleware.metrics import metrics_middleware
from web.pages import TEMPLATE_FILTERS, item_first_lookups, template_context
from web.views.admin import audit as admin_audit
from web.views.admin import caught_mail
from web.views.admin import employees as admin_employees
from web.views.admin import explain as admin_explain
from web.views.admin import groups as admin_groups
from web.views.admin import mail as admin_mail
from web.views.admin import overview as admin_overview
from web.views.admin import totp as admin_totp
from web.views.admin import webusers as admin_webusers
from web.views.admin.common import ADMIN
from web.views.api import account as account_api
from web.views.api import alerts as alerts_api
from web.views.api import auth as auth_api
from web.views.api import health
from web.views.api import tickets as tickets_api
from web.views.api import totp as totp_api
from web.views.pages import account as account_pages
from web.views.pages import alerts as alerts_page
from web.views.pages import login as login_page
from web.views.pages import password as password_page
from web.views.pages import security as security_page
from web.views.pages import ticket_forms
from web.views.pages import tickets as ticket_pages

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One route. `public=True`: no login (health, login, static). Otherwise `access` says who
    may use it (default: any logged-in user), e.g.
    `Route("GET", "/api/v1/assets", assets.list_assets, "api_assets",
           access=Access(privilege=("assets", "on")))`;
    the handler then gets its user with `web.context.principal(request)`."""

    method: str
    path: str
    handler: Handler
    name: str
    public: bool = False
    access: Access | None = None
    # False: the handler takes pooled connections itself, around slow work that needs none
    # (hashing a password); the request's connection is let go once the session is resolved
    holds_db: bool = True

    def __post_init__(self) -> None:
        if self.public and self.access is not None:
            raise ValueError(f"route {self.name}: public routes take no access spec")


# The account-data tabs: the customer privilege and the employee right of each (SPEC §2, §3).
ASSETS = Access(privilege=("assets", "on"), employee_right=("assets", "on"))
CONTRACTS = Access(privilege=("contracts", "on"), employee_right=("contracts", "on"))
DOCUMENTS = Access(privilege=("documents", "on"), employee_right=("documents", "public"))
QUOTES = Access(privilege=("quotes", "view"), employee_right=("quotes", "on"))

# Open to a user whose group requires two-factor login before they have set it up: setting it
# up, and logging out (every other route sends them to /security first).
ENROLMENT = Access(enrolment=True)

ROUTES: list[Route] = [
    Route("GET", "/healthz", health.healthz, "healthz", public=True),
    Route("GET", "/readyz", health.readyz, "readyz", public=True),
    Route("GET", "/metrics", health.metrics, "metrics", public=True),
    # session (SPEC §7, §8)
    Route("POST", "/api/v1/login", auth_api.api_login, "api_login", public=True),
    Route("POST", "/api/v1/login/totp", totp_api.api_login_totp, "api_login_totp", public=True),
    Route("POST", "/api/v1/logout", auth_api.api_logout, "api_logout", access=ENROLMENT),
    Route("GET", "/api/v1/me", auth_api.api_me, "api_me"),
    # employees may always change their own password; customers need the privilege
    Route("POST", "/api/v1/me/password", auth_api.api_change_password, "api_me_password",
          access=Access(privilege=("change_password", "on")), holds_db=False),
    # two-factor login, set up by the user (web/two_factor.py)
    Route("GET", "/api/v1/me/totp", totp_api.api_totp_status, "api_me_totp", access=ENROLMENT),
    Route("POST", "/api/v1/me/totp/setup", totp_api.api_totp_setup, "api_me_totp_setup",
          access=ENROLMENT),
    Route("POST", "/api/v1/me/totp/confirm", totp_api.api_totp_confirm, "api_me_totp_confirm",
          access=ENROLMENT),
    Route("POST", "/api/v1/me/totp/recovery-codes", totp_api.api_totp_recovery_codes,
          "api_me_totp_recovery_codes", access=ENROLMENT),
    Route("POST", "/api/v1/me/totp/disable", totp_api.api_totp_disable, "api_me_totp_disable",
          access=ENROLMENT),
    # -- tickets JSON API (web/views/api/tickets.py; SPEC §7) ------------------------------
    # The privilege of each route is declared here (customers: `privilege`, employees:
    # `employee_right`); field-level rules and scope are in web/ticket_actions.py, which
    # checks the route's privilege again. Out-of-scope ids answer 404 like missing ones.
    Route("GET", "/api/v1/openapi.json", openapi.openapi_json, "api_openapi", public=True),
    Route("GET", "/api/v1/tickets", tickets_api.list_tickets, "api_tickets"),
    Route("POST", "/api/v1/tickets", tickets_api.create_ticket, "api_ticket_create",
          access=Access(privilege=("tickets_add", "on"), employee_right=("create_tickets", "on"))),
    Route("GET", "/api/v1/tickets/{id}", tickets_api.get_ticket, "api_ticket"),
    # which fields a user may change is decided per field (tickets_edit, priority, …)
    Route("PATCH", "/api/v1/tickets/{id}", tickets_api.update_ticket, "api_ticket_update"),
    Route("POST", "/api/v1/tickets/{id}/close", tickets_api.close_ticket, "api_ticket_close",
          access=Access(kind="employee", employee_right=("close_tickets", "on"))),
    Route("GET", "/api/v1/tickets/{id}/notes", tickets_api.list_notes, "api_ticket_notes",
          access=Access(privilege=("history_notes", "on"))),
    Route("POST", "/api/v1/tickets/{id}/notes", tickets_api.add_note, "api_ticket_note_add",
          access=Access(privilege=("history_notes", "on"), employee_right=("add_notes", "on"))),
    Route("GET", "/api/v1/tickets/{id}/charges", tickets_api.list_charges, "api_ticket_charges",
          access=Access(privilege=("charges", "on"))),
    Route("POST", "/api/v1/tickets/{id}/charges", tickets_api.add_charge, "api_ticket_charge_add",
          access=Access(kind="employee", employee_right=("log_charges", "on"))),
    Route("GET", "/api/v1/tickets/{id}/emails", tickets_api.list_emails, "api_ticket_emails",
          access=Access(privilege=("public_emails", "on"))),
    Route("POST", "/api/v1/tickets/{id}/emails", tickets_api.file_email, "api_ticket_email_add",
          access=Access(kind="employee", employee_right=("file_emails", "on"))),
    Route("GET", "/api/v1/tickets/{id}/recipients", tickets_api.list_recipients,
          "api_ticket_recipients", access=Access(kind="employee")),
    Route("PUT", "/api/v1/tickets/{id}/recipients", tickets_api.set_recipients,
          "api_ticket_recipients_set",
          access=Access(kind="employee", employee_right=("edit_recipients", "on"))),
    # a ticket's public files are documents of the account (SPEC §1): customers need `documents`
    Route("GET", "/api/v1/tickets/{id}/attachments", tickets_api.list_attachments,
          "api_ticket_attachments", access=Access(privilege=("documents", "on"))),
    Route("POST", "/api/v1/tickets/{id}/attachments", tickets_api.upload_attachment,
          "api_ticket_attachment_add",
          access=Access(privilege=("upload_files", "on"), employee_right=("upload_attachments", "on"))),
    Route("GET", "/api/v1/attachments/{id}", tickets_api.download_attachment, "api_attachment",
          access=Access(privilege=("documents", "on"))),
    # -- end of tickets JSON API --------------------------------------------------------------
    Route("GET", "/login", login_page.login_page, "login", public=True),
    Route("POST", "/login", login_page.login_submit, "login_submit", public=True),
    Route("GET", "/login/totp", login_page.totp_page, "login_totp", public=True),
    Route("POST", "/login/totp", login_page.totp_submit, "login_totp_submit", public=True),
    Route("POST", "/logout", login_page.logout_submit, "logout", access=ENROLMENT),
    Route("GET", "/security", security_page.security_page, "security", access=ENROLMENT),
    Route("POST", "/security/totp/setup", security_page.setup_submit, "security_totp_setup",
          access=ENROLMENT),
    Route("POST", "/security/totp/confirm", security_page.confirm_submit,
          "security_totp_confirm", access=ENROLMENT),
    Route("POST", "/security/totp/recovery-codes", security_page.recovery_submit,
          "security_totp_recovery_codes", access=ENROLMENT),
    Route("POST", "/security/totp/disable", security_page.disable_submit,
          "security_totp_disable", access=ENROLMENT),
    # -- ticket pages (web/views/pages/tickets.py, ticket_forms.py), for customers and employees
    # Reads are open to every logged-in user (scope decides what they see); each form post
    # declares its privilege here, and web/ticket_actions checks again with the ticket in hand.
    Route("GET", "/", ticket_pages.ticket_list, "home"),
    Route("GET", "/tickets", ticket_pages.ticket_list, "tickets"),
    Route("GET", r"/tickets/{id:[0-9]+}", ticket_pages.ticket_detail, "ticket"),
    Route("GET", r"/tickets/{id:[0-9]+}/print", ticket_pages.ticket_print, "ticket_print"),
    Route("GET", r"/attachments/{id:[0-9]+}", ticket_pages.download_attachment, "attachment",
          access=Access(privilege=("documents", "on"))),
    Route("GET", "/tickets/new", ticket_forms.new_ticket_page, "ticket_new",
          access=Access(privilege=("tickets_add", "on"), employee_right=("create_tickets", "on"))),
    Route("POST", "/tickets/new", ticket_forms.new_ticket_submit, "ticket_new_submit",
          access=Access(privilege=("tickets_add", "on"), employee_right=("create_tickets", "on"))),
    # description: customers tickets_edit, employees edit_tickets; priority and asset: the
    # level of each field decides (ticket_actions), so the route only needs a login
    Route("POST", r"/tickets/{id:[0-9]+}/description", ticket_forms.post_description,
          "ticket_description", access=Access(privilege=("tickets_edit", "on"),
                                              employee_right=("edit_tickets", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/fields", ticket_forms.post_fields, "ticket_fields"),
    Route("POST", r"/tickets/{id:[0-9]+}/status", ticket_forms.post_status, "ticket_status",
          access=Access(kind="employee", employee_right=("edit_tickets", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/assign", ticket_forms.post_assign, "ticket_assign",
          access=Access(kind="employee", employee_right=("assign_tickets", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/recipients", ticket_forms.post_recipients,
          "ticket_recipients", access=Access(kind="employee",
                                             employee_right=("edit_recipients", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/notes", ticket_forms.post_note, "ticket_note",
          access=Access(privilege=("history_notes", "on"), employee_right=("add_notes", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/charges", ticket_forms.post_charge, "ticket_charge",
          access=Access(kind="employee", employee_right=("log_charges", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/emails", ticket_forms.post_email, "ticket_email",
          access=Access(kind="employee", employee_right=("file_emails", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/attachments", ticket_forms.post_attachment,
          "ticket_attachment", access=Access(privilege=("upload_files", "on"),
                                             employee_right=("upload_attachments", "on"))),
    Route("POST", r"/tickets/{id:[0-9]+}/close", ticket_forms.post_close, "ticket_close",
          access=Access(kind="employee", employee_right=("close_tickets", "on"))),
    # an employee's own alert and recipient settings (web/views/pages/alerts.py, api/alerts.py)
    Route("GET", "/me/alerts", alerts_page.alerts_page, "me_alerts", access=Access(kind="employee")),
    Route("POST", "/me/alerts", alerts_page.alerts_submit, "me_alerts_submit",
          access=Access(kind="employee")),
    Route("GET", "/api/v1/me/alerts", alerts_api.api_get_alerts, "api_me_alerts",
          access=Access(kind="employee")),
    Route("PUT", "/api/v1/me/alerts", alerts_api.api_put_alerts, "api_me_alerts_put",
          access=Access(kind="employee")),
    # -- end of ticket pages --------------------------------------------------------------
    # -- account data (web/views/api/account.py, pages/account.py): SPEC §2 rows 4-6, 8, 10,
    # 12-14 for customers, SPEC §3's rights over account data for employees. Each route
    # declares both; whoever lacks theirs gets 403, and the nav shows a tab only where its
    # route would answer. Rows out of scope (other accounts, documents or articles above the
    # user's level) are 404. Every employee has kb=public at least; only customers accept quotes.
    Route("GET", "/api/v1/assets", account_api.api_assets, "api_assets", access=ASSETS),
    Route("GET", "/api/v1/contracts", account_api.api_contracts, "api_contracts", access=CONTRACTS),
    Route("GET", r"/api/v1/contracts/{id:[0-9]+}", account_api.api_contract, "api_contract",
          access=CONTRACTS),
    Route("GET", "/api/v1/documents", account_api.api_documents, "api_documents", access=DOCUMENTS),
    Route("GET", r"/api/v1/documents/{id:[0-9]+}", account_api.download_document, "api_document",
          access=DOCUMENTS),
    Route("GET", "/api/v1/kb", account_api.api_kb, "api_kb",
          access=Access(privilege=("kb", "view"))),
    Route("GET", r"/api/v1/kb/{id:[0-9]+}", account_api.api_kb_article, "api_kb_article",
          access=Access(privilege=("kb", "view"))),
    Route("GET", r"/api/v1/kb/{id:[0-9]+}/files/{file_id:[0-9]+}", account_api.download_kb_file,
          "api_kb_file", access=Access(privilege=("kb", "download"))),
    Route("GET", "/api/v1/quotes", account_api.api_quotes, "api_quotes", access=QUOTES),
    Route("POST", r"/api/v1/quotes/{id:[0-9]+}/accept", account_api.api_accept_quote,
          "api_quote_accept", access=Access(kind="customer", privilege=("quotes", "accept"))),
    Route("GET", "/assets", account_pages.assets_page, "assets", access=ASSETS),
    Route("GET", "/contracts", account_pages.contracts_page, "contracts", access=CONTRACTS),
    Route("GET", r"/contracts/{id:[0-9]+}", account_pages.contract_page, "contract",
          access=CONTRACTS),
    Route("GET", "/documents", account_pages.documents_page, "documents", access=DOCUMENTS),
    Route("GET", r"/documents/{id:[0-9]+}", account_api.download_document, "document",
          access=DOCUMENTS),
    Route("GET", "/kb", account_pages.kb_page, "kb",
          access=Access(privilege=("kb", "view"))),
    Route("GET", r"/kb/{id:[0-9]+}", account_pages.kb_article_page, "kb_article",
          access=Access(privilege=("kb", "view"))),
    Route("GET", r"/kb/{id:[0-9]+}/files/{file_id:[0-9]+}", account_api.download_kb_file, "kb_file",
          access=Access(privilege=("kb", "download"))),
    Route("GET", "/quotes", account_pages.quotes_page, "quotes", access=QUOTES),
    Route("POST", r"/quotes/{id:[0-9]+}/accept", account_pages.accept_quote_submit, "quote_accept",
          access=Access(kind="customer", privilege=("quotes", "accept"))),
    # the form beside POST /api/v1/me/password, with the same access
    Route("GET", "/me/password", password_page.password_page, "me_password",
          access=Access(privilege=("change_password", "on"))),
    Route("POST", "/me/password", password_page.password_submit, "me_password_submit",
          access=Access(privilege=("change_password", "on")), holds_db=False),
    # -- end of account data --------------------------------------------------------------
    # -- administration (web/views/admin/): the portal face of daemon/services, the functions
    # `portald admin …` calls. ADMIN = employees whose group has the `admin` privilege; everyone
    # else gets 404, as if these pages did not exist (Access.hide).
    Route("GET", "/admin", admin_overview.overview_page, "admin", access=ADMIN),
    Route("GET", "/admin/groups", admin_groups.customer["grid"], "admin_groups", access=ADMIN),
    Route("POST", "/admin/groups", admin_groups.customer["create"], "admin_group_create",
          access=ADMIN),
    Route("GET", r"/admin/groups/{id:[0-9]+}", admin_groups.customer["page"], "admin_group",
          access=ADMIN),
    Route("POST", r"/admin/groups/{id:[0-9]+}/levels", admin_groups.customer["levels"],
          "admin_group_levels", access=ADMIN),
    Route("POST", r"/admin/groups/{id:[0-9]+}/rename", admin_groups.customer["rename"],
          "admin_group_rename", access=ADMIN),
    Route("POST", r"/admin/groups/{id:[0-9]+}/default", admin_groups.customer["default"],
          "admin_group_default", access=ADMIN),
    Route("POST", r"/admin/groups/{id:[0-9]+}/delete", admin_groups.customer["delete"],
          "admin_group_delete", access=ADMIN),
    Route("GET", "/admin/employee-groups", admin_groups.employee["grid"],
          "admin_employee_groups", access=ADMIN),
    Route("POST", "/admin/employee-groups", admin_groups.employee["create"],
          "admin_employee_group_create", access=ADMIN),
    Route("GET", r"/admin/employee-groups/{id:[0-9]+}", admin_groups.employee["page"],
          "admin_employee_group", access=ADMIN),
    Route("POST", r"/admin/employee-groups/{id:[0-9]+}/levels", admin_groups.employee["levels"],
          "admin_employee_group_levels", access=ADMIN),
    Route("POST", r"/admin/employee-groups/{id:[0-9]+}/rename", admin_groups.employee["rename"],
          "admin_employee_group_rename", access=ADMIN),
    Route("POST", r"/admin/employee-groups/{id:[0-9]+}/delete", admin_groups.employee["delete"],
          "admin_employee_group_delete", access=ADMIN),
    Route("GET", "/admin/accounts", admin_webusers.accounts_page, "admin_accounts", access=ADMIN),
    Route("POST", "/admin/accounts", admin_webusers.create_account, "admin_account_create",
          access=ADMIN),
    Route("GET", r"/admin/accounts/{id:[0-9]+}", admin_webusers.users_page, "admin_account",
          access=ADMIN),
    Route("POST", r"/admin/accounts/{id:[0-9]+}/users", admin_webusers.create_webuser,
          "admin_webuser_create", access=ADMIN),
    Route("POST", r"/admin/accounts/{id:[0-9]+}/users/group", admin_webusers.set_group,
          "admin_webuser_group", access=ADMIN),
    Route("POST", r"/admin/accounts/{id:[0-9]+}/users/active", admin_webusers.set_active,
          "admin_webuser_active", access=ADMIN),
    Route("POST", r"/admin/accounts/{id:[0-9]+}/users/password", admin_webusers.reset_password,
          "admin_webuser_password", access=ADMIN),
    Route("POST", r"/admin/accounts/{id:[0-9]+}/users/totp", admin_totp.webuser_totp,
          "admin_webuser_totp", access=ADMIN),
    Route("GET", "/admin/employees", admin_employees.employees_page, "admin_employees",
          access=ADMIN),
    Route("POST", "/admin/employees", admin_employees.create_employee, "admin_employee_create",
          access=ADMIN),
    Route("POST", "/admin/license", admin_employees.set_license, "admin_license", access=ADMIN),
    Route("GET", r"/admin/employees/{id:[0-9]+}", admin_employees.employee_page, "admin_employee",
          access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/active", admin_employees.set_active,
          "admin_employee_active", access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/web-access", admin_employees.set_web_access,
          "admin_employee_web_access", access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/group", admin_employees.set_group,
          "admin_employee_group_set", access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/access", admin_employees.set_access,
          "admin_employee_access", access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/mail", admin_employees.set_mail,
          "admin_employee_mail", access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/rate", admin_employees.set_rate,
          "admin_employee_rate", access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/password", admin_employees.reset_password,
          "admin_employee_password", access=ADMIN),
    Route("POST", r"/admin/employees/{id:[0-9]+}/totp", admin_totp.employee_totp,
          "admin_employee_totp", access=ADMIN),
    Route("GET", "/admin/audit", admin_audit.audit_page, "admin_audit", access=ADMIN),
    Route("GET", "/admin/explain", admin_explain.explain_page, "admin_explain", access=ADMIN),
    Route("GET", "/admin/outbox", admin_mail.outbox_page, "admin_outbox", access=ADMIN),
    Route("POST", r"/admin/outbox/{id:[0-9]+}/retry", admin_mail.retry, "admin_outbox_retry",
          access=ADMIN),
    Route("GET", "/admin/tickets", admin_mail.ticket_lookup, "admin_ticket_lookup",
          access=ADMIN),
    Route("GET", r"/admin/tickets/{id:[0-9]+}/mail", admin_mail.ticket_mail_page,
          "admin_ticket_mail", access=ADMIN),
    # -- end of administration ------------------------------------------------------------
]

# Demo mode only (the mail catcher runs: `make run`): registered by setup_web then, and
# otherwise not at all, so outside demo mode these paths simply do not exist.
DEMO_ROUTES: list[Route] = [
    Route("GET", "/admin/caught-mail", caught_mail.mail_list, "admin_caught_mails", access=ADMIN),
    Route("GET", r"/admin/caught-mail/{name:[0-9]{8}-[0-9]{6}-[0-9]{9}}", caught_mail.mail_page,
          "admin_caught_mail", access=ADMIN),
    Route("POST", r"/admin/caught-mail/{name:[0-9]{8}-[0-9]{6}-[0-9]{9}}/reply", caught_mail.reply_submit,
          "admin_caught_mail_reply", access=ADMIN),
]


def setup_web(app: web.Application) -> None:
    # Outermost first: errors are rendered for everything inside; access runs before CSRF
    # because the CSRF token belongs to the session that access resolves.
    app.middlewares.extend([metrics_middleware, error_middleware, access_middleware,
                            csrf_middleware])
    specs: dict[web.AbstractRoute, RouteSpec] = {}
    for r in ROUTES + (DEMO_ROUTES if CAUGHT_MAIL in app else []):
        added = app.router.add_route(r.method, r.path, r.handler, name=r.name)
        specs[added] = RouteSpec(public=r.public, access=r.access or Access(),
                                 holds_db=r.holds_db)
    app[ROUTE_SPECS] = specs
    app[ACCESS_BY_NAME] = {r.name: r.access or Access() for r in ROUTES if not r.public}
    setup_hashing(app)
    setup_headers(app)
    if STATIC_DIR.exists():
        app.router.add_static("/static", STATIC_DIR, name="static")
    # Templates extend web/templates/base.html; autoescaping is on for every template.
    # aiohttp-jinja2 keeps its per-request context under a string key; that is its business.
    warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module="aiohttp_jinja2")
    # Outside demo mode (`make run`, where templates are being edited) a template is compiled
    # once, on first use, and never checked against its file again (no stat per render).
    development = CAUGHT_MAIL in app
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
        auto_reload=development, cache_size=-1,
        context_processors=[aiohttp_jinja2.request_processor, template_context])
    env.filters["filename"] = safe_filename
    env.globals["form_fields"] = FormFields
    env.filters.update(FORM_FILTERS)
    item_first_lookups(env)
    env.filters.update(TEMPLATE_FILTERS)
    env.globals.update(status_labels=ticket_pages.STATUS_LABELS,
                       priority_labels=ticket_pages.PRIORITY_LABELS)
