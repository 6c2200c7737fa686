"""In a real browser (Debian's headless Chromium via Playwright): upload an image on the app's page and
watch its status reach done; log in to Flower and see the workers. Screenshots go to SMOKE_ARTIFACTS."""

from __future__ import annotations

import os
import time

import pytest

from smokelib import png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.reference]
CHROMIUM = os.environ.get("SMOKE_CHROMIUM", "/usr/bin/chromium")
# Debian's own Chromium, never a downloaded one (`playwright install` is not used anywhere).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing (the make target installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def artifacts(target):
    os.makedirs(target.artifacts, exist_ok=True)
    return target.artifacts


def new_context(browser, target, **kwargs):
    # Chromium keeps its own trust store; the CA is verified by the requests-based tests, so the
    # browser accepts the deployment's local-CA certificate here.
    return browser.new_context(ignore_https_errors=bool(target.ca_file), viewport={"width": 1100, "height": 900},
                               **kwargs)


UPLOAD_ATTEMPTS = 3


def test_upload_page_processes_an_image(browser, target, artifacts, tmp_path):
    picture = tmp_path / "browser-upload.png"
    picture.write_bytes(png_bytes(1200, 900))
    context = new_context(browser, target)
    page = context.new_page()
    failed = []  # requests the browser gave up on, with Chromium's reason (for the assertion message)
    page.on("requestfailed", lambda request: failed.append(f"{request.method} {request.url}: {request.failure}"))
    try:
        page.goto(target.url("/"), wait_until="load")
        page.set_input_files("#file", str(picture))
        answers = []
        page.on("response", lambda r: answers.append(r) if r.url.endswith("/api/images/") else None)
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            failed.clear()
            page.click("button[type=submit]")
            deadline = time.monotonic() + 60
            lost = []
            while not answers and not lost and time.monotonic() < deadline:  # poll, answered in ms
                page.wait_for_timeout(100)
                lost = [f for f in failed if "/api/images/:" in f]
            if answers:
                break
            # Chromium cancels in-flight requests when the host's interfaces change, which Docker does
            # whenever any container starts on the machine; only that reason earns another click.
            if attempt == UPLOAD_ATTEMPTS or not lost or "ERR_NETWORK_CHANGED" not in lost[0]:
                pytest.fail(f"the upload got no response; failed requests: {failed}")
        upload = answers[0]
        assert upload.status == 202, (upload.status, upload.text(), failed)
        page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=90_000)
        # The page then shows the resized image, fetched from the app through the proxy.
        page.wait_for_function("(() => { const img = document.querySelector('#resized img');"
                               " return img && img.complete && img.naturalWidth > 0; })()", timeout=30_000)
        assert page.eval_on_selector("#resized img", "img => img.naturalWidth") <= 1024
    finally:
        page.screenshot(path=os.path.join(artifacts, "upload-done.png"), full_page=True)
        context.close()
    assert page.is_closed()


def test_flower_login_shows_the_workers(browser, target, artifacts, flower_auth):
    from playwright.sync_api import Error as PlaywrightError

    anonymous = new_context(browser, target)
    page = anonymous.new_page()
    try:  # headless Chromium turns an unanswerable auth challenge into a navigation error
        response = page.goto(target.url(target.flower_path), wait_until="domcontentloaded")
        assert response.status == 401
    except PlaywrightError as exc:
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc), exc
    anonymous.close()

    context = new_context(browser, target, http_credentials={"username": flower_auth[0], "password": flower_auth[1]})
    page = context.new_page()
    try:
        response = page.goto(target.url(target.flower_path + "workers"), wait_until="domcontentloaded")
        assert response.status == 200
        # "default@" in Compose and on Kubernetes, "default-io-images@" on a VM with one pool.
        page.wait_for_selector("text=/default(-io)?(-images)?@/", timeout=60_000)
        page.wait_for_selector("text=/images@/", timeout=60_000)
    finally:
        page.screenshot(path=os.path.join(artifacts, "flower-workers.png"), full_page=True)
        context.close()
