"""/admin: where each admin task lives, with the numbers worth a glance."""

from __future__ import annotations

from aiohttp import web

from daemon.access.kinds import CUSTOMER_GROUPS
from daemon.formatting import when
from daemon.queries import audit_search
from daemon.services.accounts import list_accounts
from daemon.services.groups import list_groups
from daemon.services.licenses import show_license
from daemon.services.outbox import OUTBOX_LIST_LIMIT, list_outbox
from web.views.admin.common import admin_page, connection

RECENT_CHANGES = 8


async def overview_page(request: web.Request) -> web.Response:
    async with connection(request) as conn:
        seats = await show_license(conn)
        groups = await list_groups(conn, CUSTOMER_GROUPS)
        accounts = await list_accounts(conn)
        failed = await list_outbox(conn, status="failed")
        recent = await audit_search.search(conn, limit=RECENT_CHANGES)
    default = next((g["name"] for g in groups if g["is_default"]), "")
    return admin_page(request, "admin_overview.html", {
        "seats": seats, "group_count": len(groups), "default_group": default,
        "account_count": len(accounts), "web_users": sum(a["web_users"] for a in accounts),
        "failed_mail": len(failed), "failed_capped": len(failed) >= OUTBOX_LIST_LIMIT,
        "recent": [{"at": when(r["at"]), "actor": r["actor"],
                    "action": r["action"], "target": r["target"]} for r in recent],
    })
