"""Deploy-time storage set-up (Compose one-shot `s3-bucket`, the chart's job, Ansible's storage role).

Idempotent: creates DEPLOYKIT_STORAGE_S3_BUCKET when missing (private: no ACL, no policy), proves the credentials
can write and delete in it and that anonymous clients cannot read it. With DEPLOYKIT_STORAGE_BACKEND=filesystem it
creates/checks MEDIA_ROOT. Exits non-zero with a message naming the variable to fix.
"""

from django.core.management.base import BaseCommand, CommandError

from deploykit.ops.storage import StorageError, ensure_bucket


class Command(BaseCommand):
    help = "Create the storage bucket when missing and check it is private and writable (idempotent)."

    def handle(self, *args, **opts):
        try:
            summary = ensure_bucket()
        except StorageError as exc:
            raise CommandError(f"Storage set-up failed: {exc}") from exc
        self.stdout.write(summary)
