"""Production settings: the base, then deploykit's deployment contract (configuration from the
environment, probes, logging, storage, the Celery production settings) applied last."""
from .base import *  # noqa: F401,F403

DEBUG = False

from deploykit.settings import apply  # noqa: E402

apply(globals())
