"""The rows of the ticket list, written here rather than in its template: fifty rows of seven
cells were most of the page's cost in Jinja (an escape and a Markup object per value, a
context lookup per name). The bytes are the ones the template's loop wrote, so the page reads
the same; tickets_list.html keeps the table around them.

The free text of all rows (numbers, descriptions, names) is escaped in one call: the texts
joined by NUL, which no PostgreSQL text can hold, and split again. Escaping each value on its
own cost a Markup object and a call per cell, a third of the list page's rendering. The other
cells are the page's own labels, escaped once per page, and times written as digits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jinja2
from jinja2.filters import do_truncate
from markupsafe import Markup, escape

from daemon.formatting import when

DESCRIPTION_CHARS = 140  # what the cell shows of a description (Jinja's `truncate`)
_SEPARATOR = "\x00"


def html(value: Any) -> str:
    """`value` as the template's autoescaping writes it."""
    return str(escape(value))


def escaped_all(texts: Sequence[str]) -> list[str]:
    """Each of `texts` escaped as `html` would, in one pass when none holds a NUL."""
    joined = _SEPARATOR.join(texts)
    parts = str(escape(joined)).split(_SEPARATOR)
    if len(parts) != len(texts):  # a NUL after all (not from the database): one by one
        return [html(t) for t in texts]
    return parts


def list_rows(env: jinja2.Environment, tickets: Iterable[Mapping[str, Any]], *, employee: bool,
              show_priority: bool, status_labels: Mapping[str, str],
              priority_labels: Mapping[str, str]) -> Markup:
    """The <tr> of each ticket, with the whitespace the template's loop had between them."""
    tickets = list(tickets)
    # the labels escaped once per page, not once per row
    statuses = {key: (html(key), html(label)) for key, label in status_labels.items()}
    priorities = {key: html(label) for key, label in priority_labels.items()}
    per_row = 4 if employee else 2
    # what Jinja's `truncate` leaves alone, checked here: most descriptions are short
    short = DESCRIPTION_CHARS + env.policies["truncate.leeway"]
    texts: list[str] = []
    for t in tickets:
        description = t["description"]
        texts.append(str(t["number"]))
        texts.append(description if len(description) <= short
                     else do_truncate(env, description, DESCRIPTION_CHARS))
        if employee:
            texts.append(str(t["account_name"]))
            texts.append(str(t["assigned_name"] or "—"))
    safe = escaped_all(texts)
    out = []
    for i, t in enumerate(tickets):
        number, description, *names = safe[i * per_row:(i + 1) * per_row]
        account = f'<td data-label="Account">{names[0]}</td>' if employee else ""
        priority = (f'<td data-label="Priority">{priorities[t["priority"]]}</td>'
                    if show_priority else "")
        assigned = f'<td data-label="Assigned to">{names[1]}</td>' if employee else ""
        status, status_label = statuses[t["status"]]
        out.append(
            f'\n    <tr>\n      <td data-label="Number"><a href="/tickets/{t["id"]}">'
            f'{number}</a></td>\n'
            f'      <td data-label="Description" class="clip">{description}</td>\n'
            f'      {account}\n'
            f'      <td data-label="Status"><span class="badge status-{status}">'
            f'{status_label}</span></td>\n'
            f'      {priority}\n      {assigned}\n'
            f'      <td data-label="Updated" class="nowrap">{when(t["updated_at"])}</td>\n'
            f'    </tr>\n  ')
    return Markup("".join(out))
