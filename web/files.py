"""Uploads and downloads: the size limit checked while streaming, file names made safe, and
files always sent as attachments (never rendered inline by the browser)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.appkeys import SETTINGS
from daemon.files import safe_content_type, safe_filename
from web.errors import ApiError
from web.input import posted

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes
    fields: dict[str, str]


def max_upload_bytes(request: web.Request) -> int:
    return request.app[SETTINGS].current.http.upload_max_mb * 1024 * 1024


async def read_upload(request: web.Request, *, field: str = "file") -> Upload:
    """Read a multipart upload with one file in `field` (plus small text fields). Stops reading
    and answers 413 as soon as the file passes the configured limit."""
    try:
        return await _read_upload(request, field)
    except (HttpProcessingError, ValueError):
        # aiohttp's multipart parser refuses malformed part headers (raw control characters
        # in a file name, a bad boundary): the client's mistake, not a 500
        raise ApiError(400, "the multipart body is malformed", field=field) from None


async def _read_upload(request: web.Request, field: str) -> Upload:
    limit = max_upload_bytes(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send the file as multipart/form-data", field=field)
    if request.body_exists and request.content.at_eof():
        return await _parsed_upload(request, field, limit)
    reader = await request.multipart()
    upload: tuple[str, str, bytes] | None = None
    fields: dict[str, str] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == field and part.filename is not None:
            chunks, size = [], 0
            while chunk := await part.read_chunk(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the file is larger than the limit of {limit // (1024 * 1024)} MB",
                                   field=field)
                chunks.append(chunk)
            name = safe_filename(part.filename)
            upload = (name, safe_content_type(part.headers.get("Content-Type"), name), b"".join(chunks))
        elif part.name and len(fields) < 20:
            value = await part.read(decode=True)
            if len(value) > 64 * 1024:
                raise ApiError(413, f"the field {part.name} is too large", field=part.name)
            fields[part.name] = value.decode("utf-8", errors="replace")
    if upload is None:
        raise ApiError(422, f"no file in the field '{field}'", field=field)
    return Upload(*upload, fields=fields)


async def _parsed_upload(request: web.Request, field: str, limit: int) -> Upload:
    """The body was already read: an HTML form post, which the CSRF middleware parses for its
    token (a browser form cannot send the header), and aiohttp reads a body only once. Take
    the file from that parsed form; aiohttp spooled it to a temporary file, bounded by the
    application's client_max_size."""
    try:
        form = await posted(request)
    except ValueError:
        raise ApiError(422, f"no file in the field '{field}'", field=field) from None
    part = form.get(field)
    if not isinstance(part, web.FileField):
        raise ApiError(422, f"no file in the field '{field}'", field=field)
    data = part.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"the file is larger than the limit of {limit // (1024 * 1024)} MB",
                       field=field)
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k != field}
    if len(fields) > 20 or any(len(v) > 64 * 1024 for v in fields.values()):
        raise ApiError(413, "the form has too many or too large fields")
    name = safe_filename(part.filename)
    return Upload(name, safe_content_type(part.content_type, name), data, fields)


def download_response(*, filename: str, content_type: str, data: bytes) -> web.Response:
    """The file as an attachment with a safe name; never sniffed or rendered inline."""
    name = safe_filename(filename)
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return web.Response(body=data, headers={
        "Content-Type": safe_content_type(content_type, name),
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    })
