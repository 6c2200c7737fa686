"""deploykit's import-time version check (deploykit.versions): the Django, Celery and kombu range comes
from deploykit's own metadata, and a version outside it is refused with both versions named. The lookup
of installed versions is simulated; `make test-matrix` runs this file at both ends of the range."""

import importlib.metadata as metadata
import subprocess
import sys

import pytest

from deploykit import versions

REQUIRES = ["Django<6.2,>=5.2", "celery<5.8,>=5.7", "kombu (<5.8,>=5.7)", "redis",
            'django-storages[s3]; extra == "s3"', "python-json-logger>=3.1"]


def installed(**found):
    return lambda name: found.get(name)


def test_the_range_comes_from_deploykits_metadata():
    ranges = versions.supported_ranges()
    assert ranges == versions.supported_ranges(metadata.requires("deploykit"))
    assert set(ranges) == {"django", "celery", "kombu"}
    for name, (_, specifier) in ranges.items():  # each has both ends
        assert ">=" in specifier and "<" in specifier, (name, specifier)


def test_parsing_keeps_only_the_checked_names_lower_bound_first():
    assert versions.supported_ranges(REQUIRES) == {
        "django": ("Django", ">=5.2,<6.2"), "celery": ("celery", ">=5.7,<5.8"), "kombu": ("kombu", ">=5.7,<5.8")}


@pytest.mark.parametrize("version, ok", [
    ("5.2", True), ("5.2.0", True), ("5.2.19", True), ("6.0.4", True), ("6.1.3", True), ("6.2", False),
    ("6.2.0rc1", False), ("5.1.15", False), ("4.2", False), ("7.0", False)])
def test_django_range(version, ok):
    assert versions.satisfies(version, ">=5.2,<6.2") is ok


def test_inside_the_range_nothing_is_refused():
    ranges = versions.supported_ranges(REQUIRES)
    versions.check(ranges, installed(django="6.1.3", celery="5.7.0", kombu="5.7.2"))
    versions.check(ranges, installed(django="5.2.0"))  # a dependency not installed is not this check's business


def test_outside_the_range_the_message_names_installed_and_supported_versions():
    ranges = versions.supported_ranges(REQUIRES)
    with pytest.raises(ImportError) as refused:
        versions.check(ranges, installed(django="6.2.0", celery="5.7.1", kombu="5.8.0"))
    message = str(refused.value)
    assert "Django 6.2.0 is installed; deploykit supports Django >=5.2,<6.2" in message
    # kombu and Celery: one minor series (private members of both are overridden: the Redis transport)
    assert "kombu 5.8.0 is installed; deploykit supports kombu >=5.7,<5.8" in message
    assert "celery" not in message


def test_an_unsupported_specifier_is_an_error_not_a_pass():
    with pytest.raises(ValueError, match="unsupported version specifier"):
        versions.satisfies("5.2", "~=5.2")


def test_importing_deploykit_refuses_a_django_outside_the_range():
    # A fresh interpreter whose version lookup reports Django 6.2.0: `import deploykit` itself fails.
    code = ("import importlib.metadata as m; real = m.version; "
            "m.version = lambda n: '6.2.0' if n.lower() == 'django' else real(n); import deploykit")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    supported = versions.supported_ranges()["django"][1]
    assert ("ImportError: deploykit cannot run on these versions: Django 6.2.0 is installed; "
            f"deploykit supports Django {supported}") in result.stderr
