"""The one JSON body parser of the API: a malformed or hostile body is a 4xx with a message, never a 500.

Checked before anything is decoded: the size (413), the charset named in Content-Type and the encoding of
the body itself (UTF-8 only: RFC 8259), then the nesting depth, by a scan that does not recurse (the
standard parser recurses once per level: 50,000 levels were a RecursionError and a 500). Checked while
decoding: numbers (integers of more than MAX_NUMBER_DIGITS digits, NaN/Infinity and floats that overflow),
duplicate keys; after: NUL characters and lone surrogates in strings, and that the top level is an object.
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from .errors import PayloadTooLarge

MAX_JSON_BYTES = 64 * 1024  # the API's JSON bodies are a few hundred bytes; capped by DATA_UPLOAD_MAX_MEMORY_SIZE
MAX_DEPTH = 32
MAX_NUMBER_DIGITS = 100

_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]*)", re.IGNORECASE)
# A JSON string (escapes included) or one bracket: brackets inside strings are not nesting. A string left
# open runs to the end of the body, so the scan stays linear (json.loads refuses the body anyway); without
# that, each `\"` of a body like `[\"[\"[\"...` would start a scan to the end: quadratic, seconds per request.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"), (b"\xfe\xff", "UTF-16"),
         (b"\xff\xfe", "UTF-16"), (b"\xef\xbb\xbf", "UTF-8 with a byte order mark"))


class _Refused(ValueError):
    """Raised from the decoder's hooks: becomes a 400 with this message."""


def body_limit() -> int:
    django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return MAX_JSON_BYTES if django_limit is None else min(MAX_JSON_BYTES, django_limit)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large: JSON bodies are limited to {limit} bytes.")


def _refuse(message: str):
    raise exceptions.ParseError(message)


def check_encoding(raw: bytes) -> str:
    """The body as text, or a ParseError naming why it is not UTF-8 JSON."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            _refuse(f"Body is {name}: JSON bodies must be UTF-8 without a byte order mark.")
    if b"\x00" in raw[:4]:  # JSON text starts with ASCII: NUL bytes there are UTF-16/32 without a BOM
        _refuse("Body looks like UTF-16 or UTF-32 (NUL bytes): JSON bodies must be UTF-8.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse(f"Body is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}.")


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than `limit`, counted without recursion (strings skipped)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                _refuse(f"JSON nested too deeply: more than {limit} levels of arrays/objects.")
        elif token in (b"]", b"}"):
            depth = max(depth - 1, 0)  # a stray closer is invalid JSON anyway: it earns no extra depth


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _Refused(f"Number too large: integers may have at most {MAX_NUMBER_DIGITS} digits.")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _Refused(f"Number too long: at most {MAX_NUMBER_DIGITS} characters.")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"Number out of range: {text[:20]} does not fit in a 64-bit float.")
    return value


def _parse_constant(name: str):
    raise _Refused(f"{name} is not JSON: numbers must be finite.")


def _object(pairs: list) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _Refused(f"Duplicate key {duplicate[:50]!r} in a JSON object.")
    return result


def check_strings(value) -> None:
    """No NUL character or lone surrogate (\\u0000, \\ud800) in any key or string; no recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (bad := _BAD_CHARACTER.search(item)):
            what = "NUL character" if bad.group() == "\x00" else "lone surrogate"
            _refuse(f"JSON string contains a {what} (\\u{ord(bad.group()):04x}): not allowed.")


def loads(raw: bytes, *, top_level=dict):
    """Parse a JSON body under the rules above; ParseError (400) or PayloadTooLarge (413) otherwise."""
    limit = body_limit()
    if len(raw) > limit:
        raise _too_large(limit)
    text = check_encoding(raw)
    check_depth(raw)
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
                           object_pairs_hook=_object)
    except _Refused as exc:
        _refuse(str(exc))
    except json.JSONDecodeError as exc:
        _refuse(f"Malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).")
    except RecursionError:  # pragma: no cover - check_depth refuses this first
        _refuse(f"JSON nested too deeply: more than {MAX_DEPTH} levels of arrays/objects.")
    check_strings(value)
    if top_level is not None and not isinstance(value, top_level):
        _refuse(f"Expected a JSON object at the top level, got {_json_type(value)}.")
    return value


def _json_type(value) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"


class StrictJSONParser(BaseParser):
    """DRF parser for application/json with the checks of this module. The top level must be an object."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        charset = _CHARSET.search(media_type or "")
        if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
            raise exceptions.UnsupportedMediaType(media_type, detail=(
                f"Unsupported charset {charset.group(1)[:40]!r} in Content-Type: JSON bodies must be UTF-8."))
        limit = body_limit()
        request = (parser_context or {}).get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            declared = 0
        if declared > limit:  # refused before reading
            raise _too_large(limit)
        raw = stream.read(limit + 1) if stream is not None else b""
        if not raw.strip():
            _refuse("Empty body: expected a JSON object.")
        return loads(raw)
