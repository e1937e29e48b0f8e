"""/admin: where each admin task lives, with the numbers worth a glance."""

from __future__ import annotations

from aiohttp import web

from daemon import admin
from daemon.queries import audit_search
from web.formatting import when
from web.views.admin.common import connection, render

RECENT_CHANGES = 8


async def overview_page(request: web.Request) -> web.Response:
    async with connection(request) as conn:
        seats = await admin.show_license(conn)
        groups = await admin.list_customer_groups(conn)
        accounts = await admin.list_accounts(conn)
        failed = await admin.list_outbox(conn, status="failed")
        recent = await audit_search.search(conn, limit=RECENT_CHANGES)
    default = next((g["name"] for g in groups if g["is_default"]), "")
    return render(request, "admin_overview.html", {
        "seats": seats, "group_count": len(groups), "default_group": default,
        "account_count": len(accounts), "web_users": sum(a["web_users"] for a in accounts),
        "failed_mail": len(failed), "failed_capped": len(failed) >= admin.OUTBOX_LIST_LIMIT,
        "recent": [{"at": when(r["at"]), "actor": r["actor"],
                    "action": r["action"], "target": r["target"]} for r in recent],
    })
