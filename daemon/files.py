"""File names and types as stored and sent: for the portal's uploads and downloads and for
the attachments of replies by mail alike."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

MAX_NAME_CHARS = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


def _shown_as_is(ch: str) -> bool:
    # controls, format characters (bidi overrides that turn "exe.pdf" around, zero-width
    # ones), line and paragraph separators, lone surrogates, private-use and unassigned code
    # points (which a font may draw as anything) have no place in a name
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def safe_filename(name: str | None) -> str:
    """A name that is only a name: no directories, no control or format characters, not empty."""
    name = "".join(ch for ch in unicodedata.normalize("NFC", name or "") if _shown_as_is(ch))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME_CHARS - len(ext) - 1] + dot + ext) if dot and len(ext) < 16 else name[:MAX_NAME_CHARS]
    return name or "file"


def safe_content_type(declared: str | None, filename: str) -> str:
    guessed = mimetypes.guess_type(filename)[0]
    for candidate in (guessed, (declared or "").split(";")[0].strip().lower()):
        if candidate and _TYPE.match(candidate):
            return candidate
    return "application/octet-stream"
