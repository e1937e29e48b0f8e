"""The repeated rows of a ticket page (its notes, emails, attachments and charges), written
here rather than in ticket_detail.html's loops, as the list's rows are (ticket_rows.py): a
loop in Jinja costs a loop context, an escape and a Markup object per value and a lookup per
name, and these were the larger part of the template's escapes. The bytes are the ones the
loops wrote; the template keeps each section around its rows.

The free text of every row of every section is escaped in one call (`escaped_all`). Times
are written as digits and the page's own labels as they are: neither has anything to escape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from daemon.files import safe_filename
from daemon.formatting import file_size, money, when
from web.views.pages.ticket_rows import escaped_all

CHARGE_KINDS = {"labor": "Labor", "expense": "Expense", "part": "Product/part"}

Row = Mapping[str, Any]


@dataclass(frozen=True)
class ChildRows:
    """What ticket_detail.html writes inside each section's list: `{{ rows.notes }}`, …"""

    notes: Markup
    emails: Markup
    attachments: Markup
    charges: Markup


def _time(value: Any) -> str:
    # the <time> element of a row: the machine's time in its attribute, the reader's inside
    return f'<time datetime="{value.isoformat()}">{when(value)}</time>'


def child_rows(notes: Sequence[Row], emails: Sequence[Row], attachments: Sequence[Row],
               charges: Sequence[Row], *, employee: bool) -> ChildRows:
    """The rows of each section as its template loop wrote them (`employee`: the badges and
    the "By" column only employees see)."""
    texts: list[str] = []
    for n in notes:
        texts += (str(n["author"]), str(n["body"]))
    for m in emails:
        texts += (str(m["subject"] or "(no subject)"), str(m["from_addr"]), str(m["to_addr"]),
                  str(m["body"]))
    for a in attachments:
        texts += (safe_filename(a["filename"]), file_size(a["size"]), str(a["uploaded_by"] or ""))
    for c in charges:
        texts += (str(c["description"]), str(c["quantity"]), money(c["unit_price"]),
                  money(c["amount"]), str(c["employee"] or "—"))
    safe = iter(escaped_all(texts))
    return ChildRows(
        notes=Markup("".join(_note(n, safe) for n in notes)),
        emails=Markup("".join(_email(m, safe, employee) for m in emails)),
        attachments=Markup("".join(_attachment(a, safe, employee) for a in attachments)),
        charges=Markup("".join(_charge(c, safe, employee) for c in charges)))


def _note(n: Row, safe: Any) -> str:
    author, body = next(safe), next(safe)
    return (f'\n    <li>\n      <p class="meta"><strong>{author}</strong> · '
            f'{_time(n["created_at"])}</p>\n'
            f'      <p class="prewrap">{body}</p>\n    </li>\n    ')


def _email(m: Row, safe: Any, employee: bool) -> str:
    subject, sender, to, body = next(safe), next(safe), next(safe), next(safe)
    badge = (f'<span class="badge">{"public" if m["is_public"] else "internal"}</span>'
             if employee else "")
    return (f'\n    <li class="email">\n      <details>\n        <summary><strong>{subject}'
            f'</strong>\n          <span class="muted">· {sender} · {_time(m["created_at"])}'
            f'</span>\n          {badge}\n        </summary>\n'
            f'        <p class="muted">From {sender} to {to}</p>\n'
            f'        <p class="prewrap">{body}</p>\n      </details>\n    </li>\n    ')


def _attachment(a: Row, safe: Any, employee: bool) -> str:
    name, size, uploader = next(safe), next(safe), next(safe)
    by = f" · {uploader}" if a["uploaded_by"] else ""
    badge = '<span class="badge">internal</span>' if employee and not a["is_public"] else ""
    return (f'\n    <li><a href="/attachments/{a["id"]}">{name}</a>\n'
            f'      <span class="muted">· {size}{by}</span>\n      {badge}\n    </li>\n    ')


def _charge(c: Row, safe: Any, employee: bool) -> str:
    description, quantity, price, amount, by = (next(safe), next(safe), next(safe), next(safe),
                                                next(safe))
    hours = " h" if c["kind"] == "labor" else ""
    by_cell = f'<td data-label="By" class="nowrap">{by}</td>' if employee else ""
    return (f'\n      <tr>\n        <td data-label="Kind">{CHARGE_KINDS[c["kind"]]}</td>\n'
            f'        <td data-label="Description">{description}</td>\n'
            f'        <td data-label="Quantity" class="num">{quantity}{hours}</td>\n'
            f'        <td data-label="Price" class="num">{price}</td>\n'
            f'        <td data-label="Amount" class="num">{amount}</td>\n'
            f'        {by_cell}\n      </tr>\n    ')
