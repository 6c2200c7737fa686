"""End to end through nginx on the web host: tasks, a cross-host image resize, beat, Flower."""

import io
import re

import pytest
from PIL import Image

from conftest import group, host, run_task
from polling import wait_until


def test_http_redirects_to_https_and_tls_is_served(web):
    h = host(group("web")[0])
    # Port 80 is not published; check it from the web host itself.
    out = h.check_output("python3 -c \"import http.client as c; x=c.HTTPConnection('127.0.0.1', 80); "
                         "x.request('GET', '/status', headers={'Host': 'app.fleet.test'}); r=x.getresponse(); "
                         "print(r.status, r.getheader('Location'))\"")
    assert out.split() == ["301", "https://app.fleet.test/status"]
    response = web.get(f"{web.base}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.url.startswith("https://")


@pytest.mark.smoke
def test_demo_task_completes(web):
    state = run_task(web, "add", [2, 3])
    assert state["state"] == "SUCCESS" and state["result"] == 5, state


def test_status_sees_both_worker_hosts_and_beat(status):
    expected = {f"default-io-images@{name}" for name in group("workers")}

    def seen():
        body = status()
        return body if expected <= set(body.get("workers", [])) else None

    body = wait_until(seen, 60, what=f"workers {sorted(expected)} in /status")
    assert body["beat"]["ok"], body["beat"]


def test_beat_periodic_task_runs(status):
    first = status()["beat"]["last_run"]
    # beat_tick runs every DEPLOYKIT_BEAT_TICK_SECONDS (15 s by default): a newer run must appear.
    wait_until(lambda: status()["beat"]["last_run"] != first, 60, what="a new beat_tick run")


def png(width=640, height=480) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_uploaded_on_web_host_is_resized_on_a_worker_host(web):
    created = web.post(f"{web.base}/api/images/", files={"file": ("red.png", png(), "image/png")}, timeout=30)
    assert created.status_code == 202, created.text
    url = f"{web.base}{created.json()['url']}"
    image_id = created.json()["id"]
    state = wait_until(lambda: (s := web.get(url, timeout=10).json())["status"] in ("done", "failed") and s,
                     120, what=f"image {image_id} processed")
    assert state["status"] == "done", state
    # The web host runs no worker: the resize happened on a worker host. Find which one logged it.
    resized_on = [name for name in group("workers")
                  if re.search(r"resize_image\[[^\]]+\] succeeded",
                               host(name).check_output("journalctl -u 'app-worker@*' --no-pager -o cat"))]
    assert resized_on, "no worker host logged a successful resize_image"
    assert not host(group("web")[0]).service("app-worker@default-1").is_running
    # The download redirects to the object store; fetch it from the web host (the store is private).
    download = web.get(f"{web.base}{state['resized_url']}", allow_redirects=False, timeout=10)
    assert download.status_code == 302, download.text
    location = download.headers["Location"]
    fetched = host(group("web")[0]).check_output(
        f"python3 -c \"import sys,urllib.request as u; d=u.urlopen(sys.argv[1]).read(); print(len(d), d[:3].hex())\" '{location}'")
    size, magic = fetched.split()
    assert int(size) > 0 and magic == "ffd8ff", fetched  # a JPEG


def test_flower_behind_nginx_requires_auth_and_lists_both_worker_hosts(web, secrets):
    anonymous = web.get(f"{web.base}/flower/api/workers", timeout=10)
    assert anonymous.status_code == 401
    auth = ("admin", secrets["vault_flower_password"])
    expected = {f"default-io-images@{name}" for name in group("workers")}

    def listed():
        response = web.get(f"{web.base}/flower/api/workers", params={"refresh": "1"}, auth=auth, timeout=30)
        return response.status_code == 200 and expected <= set(response.json()) and response.json()

    wait_until(listed, 90, interval=3, what=f"Flower listing {sorted(expected)}")


def test_api_rejects_bad_input_with_4xx(web):
    response = web.post(f"{web.base}/api/tasks/", json={"task": "nope", "args": []}, timeout=10)
    assert response.status_code == 400
