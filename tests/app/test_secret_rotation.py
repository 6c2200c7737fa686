"""Rotating DJANGO_SECRET_KEY without logging everyone out (issue #20 item 12): the previous key in
DJANGO_SECRET_KEY_FALLBACKS keeps what it signed valid (a session, a signed value, a password-reset link);
without it they fail. The settings read the variable as they read the key, and refuse in production mode a
placeholder, a short key or the current key in the list, naming the variable (docs/configuration.md#rotating-secrets).
"""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.urls import reverse

from deploykit import settings as dk_settings
from deploykit.config.env import ConfigurationError

OLD_KEY = secrets.token_urlsafe(64)
NEW_KEY = secrets.token_urlsafe(64)


def rotated(monkeypatch, tmp_path: Path, **env: str) -> dict:
    """Django's settings as deploykit builds them from this environment (the suite's, production mode)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ns = {"BASE_DIR": tmp_path}
    dk_settings.apply(ns)
    return ns


def use(settings, ns: dict) -> None:
    settings.SECRET_KEY = ns["SECRET_KEY"]
    settings.SECRET_KEY_FALLBACKS = ns["SECRET_KEY_FALLBACKS"]


def test_the_variable_becomes_secret_key_fallbacks(monkeypatch, tmp_path):
    other = secrets.token_urlsafe(64)
    ns = rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=NEW_KEY, DJANGO_SECRET_KEY_FALLBACKS=f" {OLD_KEY} ,{other},")
    assert ns["SECRET_KEY"] == NEW_KEY and ns["SECRET_KEY_FALLBACKS"] == [OLD_KEY, other]


def test_unset_or_empty_means_no_fallback(monkeypatch, tmp_path):
    monkeypatch.delenv("DJANGO_SECRET_KEY_FALLBACKS", raising=False)
    assert rotated(monkeypatch, tmp_path)["SECRET_KEY_FALLBACKS"] == []
    assert rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY_FALLBACKS="")["SECRET_KEY_FALLBACKS"] == []


def test_a_value_signed_with_the_old_key_survives_the_rotation_only_with_the_fallback(settings, monkeypatch, tmp_path):
    use(settings, rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=OLD_KEY))
    token = signing.dumps({"order": 42}, salt="shop.invoice")
    timed = signing.TimestampSigner(salt="shop.link").sign("download-7")

    use(settings, rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=NEW_KEY, DJANGO_SECRET_KEY_FALLBACKS=OLD_KEY))
    assert signing.loads(token, salt="shop.invoice") == {"order": 42}
    assert signing.TimestampSigner(salt="shop.link").unsign(timed, max_age=60) == "download-7"
    # New signatures use the new key only: they do not validate under the old one.
    fresh = signing.dumps({"order": 43}, salt="shop.invoice")
    with pytest.raises(signing.BadSignature):
        signing.loads(fresh, salt="shop.invoice", key=OLD_KEY, fallback_keys=[])

    use(settings, rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=NEW_KEY, DJANGO_SECRET_KEY_FALLBACKS=""))
    with pytest.raises(signing.BadSignature):
        signing.loads(token, salt="shop.invoice")
    with pytest.raises(signing.BadSignature):
        signing.TimestampSigner(salt="shop.link").unsign(timed, max_age=60)
    assert signing.loads(fresh, salt="shop.invoice") == {"order": 43}


@pytest.mark.django_db
def test_a_logged_in_session_and_a_reset_link_survive_the_rotation_only_with_the_fallback(
        settings, monkeypatch, tmp_path, api):
    use(settings, rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=OLD_KEY))
    user = get_user_model().objects.create_user("rotator", "rotator@example.com", "a-long-pass-phrase-1",
                                                is_staff=True)
    api.force_login(user)  # the session (its data and its auth hash) is signed with the old key
    reset_token = default_token_generator.make_token(user)
    admin = reverse("admin:index")
    assert api.get(admin).status_code == 200

    use(settings, rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=NEW_KEY, DJANGO_SECRET_KEY_FALLBACKS=OLD_KEY))
    assert api.get(admin).status_code == 200, "the rotation logged the user out despite the fallback"
    assert default_token_generator.check_token(user, reset_token)

    # The same rotation without the fallback: a session signed with the old key is a logged-out one.
    use(settings, rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=OLD_KEY, DJANGO_SECRET_KEY_FALLBACKS=""))
    other = get_user_model().objects.create_user("rotator2", "rotator2@example.com", "a-long-pass-phrase-2",
                                                 is_staff=True)
    api.force_login(other)
    assert api.get(admin).status_code == 200
    use(settings, rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=NEW_KEY, DJANGO_SECRET_KEY_FALLBACKS=""))
    assert api.get(admin).status_code == 302  # to the login page
    assert not default_token_generator.check_token(user, reset_token)


@pytest.mark.parametrize("fallbacks, reason", [
    ("change-me", "entry 1 of 1 is a placeholder/insecure value"),
    (f"{OLD_KEY},too-short-a-key", "entry 2 of 2 must be at least 50 characters"),
    (f"{OLD_KEY},django-insecure-{'x' * 60}", "entry 2 of 2 is a placeholder/insecure value"),
])
def test_each_fallback_is_checked_as_the_key_is(monkeypatch, tmp_path, fallbacks, reason):
    with pytest.raises(ConfigurationError) as refused:
        rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=NEW_KEY, DJANGO_SECRET_KEY_FALLBACKS=fallbacks)
    assert f"- DJANGO_SECRET_KEY_FALLBACKS {reason}" in str(refused.value)
    assert OLD_KEY not in str(refused.value)


def test_the_current_key_in_the_fallbacks_is_refused(monkeypatch, tmp_path):
    with pytest.raises(ConfigurationError) as refused:
        rotated(monkeypatch, tmp_path, DJANGO_SECRET_KEY=NEW_KEY, DJANGO_SECRET_KEY_FALLBACKS=f"{OLD_KEY},{NEW_KEY}")
    assert "- DJANGO_SECRET_KEY_FALLBACKS contains the current DJANGO_SECRET_KEY" in str(refused.value)
    assert NEW_KEY not in str(refused.value)


def test_debug_mode_and_the_build_step_check_nothing(monkeypatch, tmp_path):
    ns = rotated(monkeypatch, tmp_path, DJANGO_DEBUG="true", DJANGO_SECRET_KEY_FALLBACKS="change-me")
    assert ns["SECRET_KEY_FALLBACKS"] == ["change-me"]
    monkeypatch.setenv("DJANGO_DEBUG", "false")
    ns = rotated(monkeypatch, tmp_path, DEPLOYKIT_BUILD_STEP="true", DJANGO_SECRET_KEY_FALLBACKS="change-me")
    assert ns["SECRET_KEY_FALLBACKS"] == ["change-me"]
