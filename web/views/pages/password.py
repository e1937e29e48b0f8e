"""The change-password form: the same `web.login.change_password` that
`POST /api/v1/me/password` calls, with its refusals shown beside the field they concern."""

from __future__ import annotations

from aiohttp import web

from web.errors import ApiError
from web.input import read_form
from web.login import change_password
from web.pages import render
from web.schemas import PasswordForm

DONE_PARAM = "changed"


def _form(request: web.Request, *, errors: dict[str, str] | None = None, done: bool = False,
          status: int = 200) -> web.Response:
    return render(request, "password.html", {"errors": errors or {}, "done": done},
                  status=status)


async def password_page(request: web.Request) -> web.Response:
    return _form(request, done=request.query.get(DONE_PARAM) == "1")


async def password_submit(request: web.Request) -> web.Response:
    try:
        form = await read_form(request, PasswordForm)
    except ApiError as err:
        field = err.field if err.field in ("current", "new", "repeat") else "form"
        return _form(request, errors={field: err.message}, status=err.status)
    current, new, repeat = form.current, form.new, form.repeat
    if not current:
        return _form(request, errors={"current": "Enter your current password."}, status=422)
    if new != repeat:
        return _form(request, errors={"repeat": "The two new passwords differ."}, status=422)
    try:
        await change_password(request, current, new)
    except ApiError as err:
        # 422 names its field; a 429 (too many wrong tries) concerns the form as a whole
        message = err.message[:1].upper() + err.message[1:] + "."
        field = err.field if err.field in ("current", "new") else "form"
        response = _form(request, errors={field: message}, status=err.status)
        response.headers.update(err.headers)
        return response
    # after the redirect a reload cannot post the form again
    return web.Response(status=303, headers={"Location": f"/me/password?{DONE_PARAM}=1"})
