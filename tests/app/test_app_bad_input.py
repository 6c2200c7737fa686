"""Malformed and hostile JSON bodies sent to a real gunicorn (deploykit-web): each is refused with a
4xx and a JSON message naming the problem (app/jobs/api/parsers.py), never a 500; a valid body still
works. 50,000 nested arrays were a RecursionError and a 500 before the parser existed."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest
from app_services import APP, BIN, app_env, start_web

pytestmark = pytest.mark.integration

JSON = "application/json"


@pytest.fixture(scope="module")
def web(start_session_app, redis_server, tmp_path_factory):
    """gunicorn on a database of its own (migrated by deploykit-migrate), so the rows its valid requests
    create are not seen by other tests; rate limits off (they have their own tests)."""
    work = tmp_path_factory.mktemp("bad-input")
    env = {"DATABASE_URL": f"sqlite:///{work / 'web.sqlite3'}", "MEDIA_ROOT": str(work / "media"),
           "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_server.port}/5",
           "DEPLOYKIT_API_THROTTLE_RATE": "off", "DEPLOYKIT_API_THROTTLE_UPLOAD_RATE": "off"}
    migrate = subprocess.run([str(BIN / "deploykit-migrate")], cwd=APP, env=app_env(**env), capture_output=True, text=True,
                             timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    return start_web(start_session_app, "web-bad-input", **env)


def post(web, body: bytes | str, content_type: str = JSON, path: str = "/api/tasks/") -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(f"{web.base}{path}", data=data, method="POST", headers={
        "Host": "app.example.com", "X-Forwarded-Proto": "https", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        raw = refused.read()
        assert refused.headers["Content-Type"].startswith(JSON), (refused.code, raw[:500])
        return refused.code, json.loads(raw)


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return '{"task": "add", "args": ' + open_ * depth + close * depth + "}"


def nested_objects(depth: int) -> str:
    return '{"task": "noop", "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


# (body, content type, status, message the error must contain)
REFUSED = {
    # The body (100 KB): over the size limit before its depth is looked at.
    "50,000 nested arrays": (nested(50_000), JSON, 413, "Request body too large"),
    "30,000 nested arrays": (nested(30_000), JSON, 400, "JSON nested too deeply: more than 32 levels"),
    "5,000 nested objects": (nested_objects(5_000), JSON, 400, "JSON nested too deeply: more than 32 levels"),
    "33 levels": (nested(32), JSON, 400, "JSON nested too deeply"),  # 32 in args + the body object
    "unclosed deep nesting": ("[" * 60_000, JSON, 400, "JSON nested too deeply"),
    "101-digit integer": ('{"task": "add", "args": [1' + "0" * 100 + ", 1]}", JSON, 400,
                          "Number too large: integers may have at most 100 digits"),
    "50,000-digit integer": ('{"task": "add", "args": [' + "9" * 50_000 + ", 1]}", JSON, 400,
                              "Number too large: integers may have at most 100 digits"),
    "negative huge integer": ('{"task": "add", "args": [-' + "9" * 101 + ", 1]}", JSON, 400, "Number too large"),
    "float overflow": ('{"task": "sleep", "args": [1e999]}', JSON, 400, "Number out of range: 1e999"),
    "very long float": ('{"task": "sleep", "args": [0.' + "0" * 200 + "1]}", JSON, 400,
                        "Number too long: at most 100 characters"),
    "NaN": ('{"task": "sleep", "args": [NaN]}', JSON, 400, "NaN is not JSON: numbers must be finite"),
    "-Infinity": ('{"task": "sleep", "args": [-Infinity]}', JSON, 400, "-Infinity is not JSON"),
    "charset utf-16": ('{"task": "noop"}', "application/json; charset=utf-16", 415,
                       "Unsupported charset 'utf-16' in Content-Type: JSON bodies must be UTF-8"),
    "charset latin-1": ('{"task": "noop"}', 'application/json; charset="ISO-8859-1"', 415,
                        "Unsupported charset 'ISO-8859-1'"),
    "UTF-16 with BOM": ('{"task": "noop"}'.encode("utf-16"), JSON, 400, "Body is UTF-16"),
    "UTF-16 without BOM": ('{"task": "noop"}'.encode("utf-16-le"), JSON, 400,
                           "Body looks like UTF-16 or UTF-32 (NUL bytes)"),
    "UTF-32 with BOM": ('{"task": "noop"}'.encode("utf-32"), JSON, 400, "Body is UTF-32"),
    "UTF-8 BOM": (b"\xef\xbb\xbf" + b'{"task": "noop"}', JSON, 400, "UTF-8 with a byte order mark"),
    "invalid UTF-8": (b'{"task": "no\xffop"}', JSON, 400, "Body is not valid UTF-8: byte 0xff at offset 12"),
    "Latin-1 text": ('{"task": "caf\xe9"}'.encode("latin-1"), JSON, 400, "Body is not valid UTF-8: byte 0xe9"),
    "UTF-8-encoded surrogate": (b'{"task": "\xed\xa0\x80"}', JSON, 400, "Body is not valid UTF-8: byte 0xed"),
    "duplicate key": ('{"task": "noop", "task": "add", "args": [1, 2]}', JSON, 400,
                      "Duplicate key 'task' in a JSON object"),
    "lone surrogate": ('{"task": "noop", "note": "\\ud800"}', JSON, 400,
                       "JSON string contains a lone surrogate (\\ud800)"),
    "NUL character": ('{"task": "no\\u0000op"}', JSON, 400, "JSON string contains a NUL character (\\u0000)"),
    "NUL character in a key": ('{"task": "noop", "a\\u0000": 1}', JSON, 400, "NUL character"),
    "raw control character": ('{"task": "no\nop"}', JSON, 400, "Malformed JSON: Invalid control character"),
    "top-level array": ('[{"task": "noop"}]', JSON, 400, "Expected a JSON object at the top level, got an array"),
    "top-level string": ('"noop"', JSON, 400, "Expected a JSON object at the top level, got a string"),
    "top-level null": ("null", JSON, 400, "Expected a JSON object at the top level, got null"),
    "top-level number": ("12", JSON, 400, "Expected a JSON object at the top level, got a number"),
    "not JSON": ("{not json", JSON, 400,
                 "Malformed JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
    "trailing data": ('{"task": "noop"} {}', JSON, 400, "Malformed JSON: Extra data (line 1, column 18)"),
    "whitespace only": ("   \n ", JSON, 400, "Empty body: expected a JSON object"),
    "body over the limit": ('{"task": "noop", "pad": "' + "x" * 70_000 + '"}', JSON, 413,
                            "Request body too large: JSON bodies are limited to 65536 bytes"),
}


@pytest.mark.parametrize("body,content_type,status,message", REFUSED.values(), ids=REFUSED.keys())
def test_bad_task_body_is_refused_with_a_message(web, body, content_type, status, message):
    code, data = post(web, body, content_type)
    assert (code, message in data["error"]) == (status, True), data


@pytest.mark.parametrize("case", ["30,000 nested arrays", "50,000-digit integer", "duplicate key",
                                  "top-level array", "UTF-16 with BOM", "body over the limit"])
def test_report_endpoint_uses_the_same_parser(web, case):
    body, content_type, status, message = REFUSED[case]
    code, data = post(web, body, content_type, path="/api/reports/")
    assert (code, message in data["error"]) == (status, True), data


def test_depth_scan_stays_linear_on_escaped_quotes(web):
    """`[]\\"` repeated: a scan that tried each quote as the start of a string running to the end of the body
    was quadratic (tens of seconds of CPU for 60 KB); the answer must come at once."""
    started = time.monotonic()
    code, data = post(web, '{"task": "add", "args": ' + '[]\\"' * 15_000)
    assert (code, data["error"]) == (400, "Malformed JSON: Expecting ',' delimiter (line 1, column 27)."), data
    assert time.monotonic() - started < 5


def test_declared_length_over_the_limit_is_413_before_the_body_is_read(web):
    url = urlparse(web.base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.putrequest("POST", "/api/tasks/", skip_host=True)
    for name, value in {"Host": "app.example.com", "X-Forwarded-Proto": "https", "Content-Type": JSON,
                        "Content-Length": str(10**9)}.items():
        connection.putheader(name, value)
    connection.endheaders(b'{"task": "noop"')  # a fraction of what was declared: the answer must not wait
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    assert response.status == 413 and "limited to 65536 bytes" in data["error"], data


def test_limits_are_inclusive_valid_bodies_still_work(web):
    # 32 levels in all (the body object + 31 arrays), a 100-digit number, brackets inside strings, a valid
    # escaped surrogate pair, non-ASCII text, charset=utf-8: accepted by the parser; the serializer decides.
    code, data = post(web, nested(31))
    assert code == 400 and data["error"] == "args: add takes exactly two integers, e.g. [2, 3].", data
    code, data = post(web, '{"task": "add", "args": [' + "1" * 100 + ", 1]}")
    assert code == 400 and data["error"] == "args: integers must fit in 64 bits.", data
    body = '{"task": "noop", "note": "[[[[{{{{' + "[" * 100 + '\\" ]]", "emoji": "\\ud83d\\ude00 café ✓"}'
    code, data = post(web, body, "application/json; charset=UTF-8")
    assert code == 202 and data["url"] == f"/api/tasks/{data['id']}/", data
    code, data = post(web, '{"task": "add", "args": [2, 3]}')
    assert code == 202, data
    code, data = post(web, '{"kind": "tasks"}', path="/api/reports/")
    assert code == 202 and data["url"] == f"/api/reports/{data['id']}/", data


def test_no_request_ended_in_a_server_error(web):
    """Last: the log of every request above holds no traceback (the RecursionError was logged here)."""
    post(web, nested(30_000))
    assert "Traceback" not in web.output() and "RecursionError" not in web.output(), web.output()[-4000:]
