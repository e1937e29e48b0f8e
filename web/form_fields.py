"""The form helpers of the ticket pages (the new-ticket form and the forms on a ticket), as
plain functions: they were Jinja macros imported `with context`, which re-ran the macro
module on every page and cost a macro call each for some sixty fields on a ticket page. The
markup is the macros' own, byte for byte.

`f` is web.views.pages.tickets.form_state: f["form"] names the form that failed, f["field"]
the field at fault, f["message"] what is wrong with it, f["values"] the user's input to put
back. Each field's id is "<form>-<field>", so the error summary can link to it; the field at
fault takes the focus.
"""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping
from typing import Any

from markupsafe import Markup, escape


class FormFields:
    """What the templates call `ff`: its methods through FORM_FILTERS (`ff|field_attrs(form,
    name)`, …), and `ff.csrf_field`."""

    def __init__(self, f: Mapping[str, Any], csrf_token: Any) -> None:
        self.f = f
        # the one form with an error, if any: every other form's fields are plain
        self.failed = f["form"] if f["error"] else None
        # what every form of the page carries: `{{ ff.csrf_field }}`, written once
        self.csrf_field = Markup(f'<input type="hidden" name="csrf_token" '
                                 f'value="{escape(csrf_token)}">')

    def has_error(self, form: str, name: str) -> Markup:
        return Markup("1" if self.failed == form and self.f["field"] == name else "")

    def attrs(self, form: str, name: str) -> Markup:
        """The attributes of an input: id, name, and the error wiring for screen readers."""
        if self.failed != form:
            return _plain_attrs(form, name)
        text = _plain_attrs(form, name)
        if self.has_error(form, name):
            text += Markup(f' aria-invalid="true" aria-describedby="{escape(form)}-'
                           f'{escape(name)}-error" autofocus')
        return text

    def error(self, form: str, name: str) -> Markup:
        if not self.has_error(form, name):
            return _NOTHING
        return Markup(f'<span class="field-error" id="{escape(form)}-{escape(name)}-error">'
                      f'{escape(self.f["message"])}</span>')

    def form_error(self, form: str, fields: Container[str]) -> Markup:
        """An error of this form that names no field of it: shown at the top of the form."""
        f = self.f
        if self.failed == form and f["field"] not in fields:
            return Markup(f'<p class="alert" role="alert">{escape(f["summary"])}</p>')
        return _NOTHING

    def value(self, form: str, name: str, default: Any = "") -> Markup:
        f = self.f
        return escape(f["values"].get(name, default) if f["form"] == form else default)


_NOTHING = Markup("")

# The methods as filters, `{{ ff|field_attrs("note", "body") }}`, rather than calls,
# `{{ ff.attrs(…) }}`: Jinja calls a filter directly, and a method through its context, which
# looks the callable over for a context argument on every call (a ticket page makes some
# forty of them).
FORM_FILTERS = {"field_attrs": FormFields.attrs, "field_error": FormFields.error,
                "field_value": FormFields.value, "form_error": FormFields.form_error}


@functools.lru_cache(maxsize=512)
def _plain_attrs(form: str, name: str) -> Markup:
    # the templates name a few dozen fields, the same on every page
    return Markup(f'id="{escape(form)}-{escape(name)}" name="{escape(name)}"')
