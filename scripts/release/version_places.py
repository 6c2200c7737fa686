"""Where the release version lives: VERSION at the repository root, and the places derived from it.

check-release.py reads every place (they must all equal VERSION); bump-version.py rewrites the ones
marked `written`. k8s/base is rendered from the chart (`make k8s-render`), so it is only read.
The images' release tag is not a file: compose/scripts/build-images.sh reads VERSION when it builds.
"""
import re
from pathlib import Path

VERSION_FILE = "VERSION"
CHART_DIR = "helm/django-celery"
CHART = f"{CHART_DIR}/Chart.yaml"
# SemVer 2.0 without build metadata: '+' is not allowed in an image tag.
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")

# In the docs: `--version X`, `image.tag=X` and `/app:X` with X a version (not a placeholder).
RELEASE_DOC = r"(?:--version |image\.tag=|/app:)(?P<v>\d+\.\d+\.\d+[^\s`,)]*)"

# (file glob, pattern whose group 'v' is the version, written by bump-version.py)
PLACES = [
    (CHART, r"^version: (?P<v>\S+)$", True),
    (CHART, r'^appVersion: "(?P<v>[^"]+)"$', True),
    ("deploykit/pyproject.toml", r'^version = "(?P<v>[^"]+)"$', True),
    ("k8s/overlays/*/kustomization.yaml", r'- name: blueprint/app\n\s+newTag: "(?P<v>[^"]+)"$', True),
    ("k8s/base/django-celery.yaml", r"^\s+helm\.sh/chart: django-celery-(?P<v>\S+)$", False),
    # The install commands of the published release (`helm install oci://... --version`) and the
    # released images' tags the docs name.
    ("README.md", RELEASE_DOC, True),
    (f"{CHART_DIR}/README.md", RELEASE_DOC, True),
]


def read_version(root: Path) -> str:
    return (root / VERSION_FILE).read_text().strip()


def is_semver(version: str) -> bool:
    return SEMVER.fullmatch(version) is not None


def find(root: Path, written_only: bool = False):
    """Yield (relative path, compiled pattern, the versions it finds there) for every place."""
    for pattern_glob, pattern, written in PLACES:
        if written_only and not written:
            continue
        paths = sorted(root.glob(pattern_glob))
        if not paths:
            yield pattern_glob, None, []
            continue
        regex = re.compile(pattern, re.MULTILINE)
        for path in paths:
            found = [m.group("v") for m in regex.finditer(path.read_text())]
            yield str(path.relative_to(root)), regex, found
