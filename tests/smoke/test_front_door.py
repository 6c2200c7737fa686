"""The public entry: TLS, redirects, probes, admin and Flower behind auth."""

from __future__ import annotations

import os
import re

import pytest


def test_readyz_is_200_over_verified_https(http, target):
    response = http.get(target.url("/readyz"), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["database"] == "ok"


def test_plain_http_redirects_to_https(http, target):
    if not target.http_url:
        pytest.skip("SMOKE_HTTP_URL not set")
    response = http.get(target.http_url + "/readyz?probe=1", allow_redirects=False, timeout=10)
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["Location"] == target.base_url + "/readyz?probe=1"


def test_app_sets_hsts_over_https(http, target):
    # Any page Django serves (the admin's login page: every project here has the admin).
    response = http.get(target.url(target.admin_path + "login/"), timeout=10)
    assert response.status_code == 200
    assert "max-age=" in response.headers.get("Strict-Transport-Security", "")


@pytest.mark.reference
def test_home_page_offers_the_upload_form(http, target):
    response = http.get(target.url("/"), timeout=10)
    assert response.status_code == 200
    assert 'type="file"' in response.text


def test_admin_requires_login(http, target):
    response = http.get(target.url(target.admin_path), allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert "login" in response.headers["Location"]


def test_flower_refuses_anonymous_access(http, target):
    response = http.get(target.url(target.flower_path), timeout=10)
    assert response.status_code == 401
    response = http.get(target.url(target.flower_path + "api/workers"), timeout=10)
    assert response.status_code == 401


def test_flower_refuses_wrong_password(http, target, flower_auth):
    response = http.get(target.url(target.flower_path), auth=(flower_auth[0], "not-the-password"), timeout=10)
    assert response.status_code == 401


def test_superuser_logs_in_to_the_admin_through_the_proxy(target):
    # Exercises CSRF behind TLS termination (trusted origins, secure cookies, X-Forwarded-Proto).
    user, password = os.environ.get("SMOKE_ADMIN_USER"), os.environ.get("SMOKE_ADMIN_PASSWORD")
    if not user or not password:
        pytest.skip("SMOKE_ADMIN_USER/SMOKE_ADMIN_PASSWORD not set")
    with target.session() as session:
        login = target.url(target.admin_path + "login/")
        page = session.get(login, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = session.post(login, data={"csrfmiddlewaretoken": token, "username": user, "password": password,
                                             "next": target.admin_path}, headers={"Referer": login}, timeout=10)
        assert response.status_code == 200, response.status_code
        assert response.url == target.url(target.admin_path), "login did not land on the admin index"
        assert "Log out" in response.text or "logout" in response.text
