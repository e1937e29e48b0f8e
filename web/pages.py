"""Rendering an HTML page of the portal."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web


def render(template: str, request: web.Request, context: dict[str, Any], *,
           status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    # pages carry personal data and a CSRF token: never from a shared cache
    response.headers["Cache-Control"] = "private, no-store"
    return response
