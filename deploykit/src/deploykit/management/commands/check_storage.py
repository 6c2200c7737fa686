"""Start-up check of file storage (deploykit-migrate runs it): the bucket exists and the credentials work.

Unlike ensure_bucket it never creates anything, so a typo in DEPLOYKIT_STORAGE_S3_BUCKET fails the deploy with a
message naming the variable instead of silently writing to a new empty bucket.
"""

from django.core.management.base import BaseCommand, CommandError

from deploykit.ops.storage import check_storage


class Command(BaseCommand):
    help = "Check that file storage (DEPLOYKIT_STORAGE_BACKEND) is reachable, exists and is writable; exit 1 if not."

    def add_arguments(self, parser):
        parser.add_argument("--read-only", action="store_true", help="skip the write/delete probe")

    def handle(self, *args, **opts):
        problems = check_storage(write=not opts["read_only"])
        if problems:
            raise CommandError("Storage is not usable: " + "; ".join(problems))
        self.stdout.write("storage OK")
