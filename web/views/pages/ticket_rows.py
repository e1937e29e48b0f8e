"""The rows of the ticket list, written here rather than in its template: fifty rows of seven
cells were most of the page's cost in Jinja (an escape and a Markup object per value, a
context lookup per name). The bytes are the ones the template's loop wrote, so the page reads
the same; tickets_list.html keeps the table around them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
from jinja2.filters import do_truncate
from markupsafe import Markup, escape

from daemon.formatting import when

DESCRIPTION_CHARS = 140  # what the cell shows of a description (Jinja's `truncate`)


def html(value: Any) -> str:
    """`value` as the template's autoescaping writes it."""
    return str(escape(value))


def list_rows(env: jinja2.Environment, tickets: Iterable[Mapping[str, Any]], *, employee: bool,
              show_priority: bool, status_labels: Mapping[str, str],
              priority_labels: Mapping[str, str]) -> Markup:
    """The <tr> of each ticket, with the whitespace the template's loop had between them."""
    # the labels escaped once per page, not once per row
    statuses = {key: html(label) for key, label in status_labels.items()}
    priorities = {key: html(label) for key, label in priority_labels.items()}
    out = []
    for t in tickets:
        account = (f'<td data-label="Account">{html(t["account_name"])}</td>'
                   if employee else "")
        priority = (f'<td data-label="Priority">{priorities[t["priority"]]}</td>'
                    if show_priority else "")
        assigned = (f'<td data-label="Assigned to">{html(t["assigned_name"] or "—")}</td>'
                    if employee else "")
        status = html(t["status"])
        out.append(
            f'\n    <tr>\n      <td data-label="Number"><a href="/tickets/{t["id"]}">'
            f'{html(t["number"])}</a></td>\n'
            f'      <td data-label="Description" class="clip">'
            f'{html(do_truncate(env, t["description"], DESCRIPTION_CHARS))}</td>\n'
            f'      {account}\n'
            f'      <td data-label="Status"><span class="badge status-{status}">'
            f'{statuses[t["status"]]}</span></td>\n'
            f'      {priority}\n      {assigned}\n'
            f'      <td data-label="Updated" class="nowrap">{html(when(t["updated_at"]))}</td>\n'
            f'    </tr>\n  ')
    return Markup("".join(out))
