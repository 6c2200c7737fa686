"""WSGI config for the bookshop."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshop.settings.production")

application = get_wsgi_application()
