"""Create or update the superuser named by DJANGO_SUPERUSER_USERNAME (idempotent; used by deploykit-migrate)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create/update the superuser from DJANGO_SUPERUSER_USERNAME/EMAIL/PASSWORD; no-op when unset."

    def handle(self, *args, **opts):
        username = getattr(settings, "DJANGO_SUPERUSER_USERNAME", "")
        password = getattr(settings, "DJANGO_SUPERUSER_PASSWORD", "")
        email = getattr(settings, "DJANGO_SUPERUSER_EMAIL", "")
        if not username:
            self.stdout.write("DJANGO_SUPERUSER_USERNAME not set: no superuser created")
            return
        if not password:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD must be set with DJANGO_SUPERUSER_USERNAME")
        User = get_user_model()
        user, created = User.objects.get_or_create(**{User.USERNAME_FIELD: username})
        user.email = email or user.email
        user.is_staff = user.is_superuser = user.is_active = True
        changed = not created and not user.check_password(password)
        if created or changed:
            user.set_password(password)
        user.save()
        state = "created" if created else "password updated" if changed else "up to date"
        self.stdout.write(f"superuser {username!r} {state}")
