#!/usr/bin/env python3
"""Write the test fleet's secrets (vault_* variables) to a fresh file, mode 0600, for one run.

Usage: gen-secrets.py OUTPUT.yml   (keeps an existing file so re-runs of one session stay idempotent)
Nothing here is committed: CI makes new secrets every run, like an operator filling the vault.
"""

import json
import os
import secrets
import string
import sys

path = sys.argv[1]
if not os.path.exists(path):
    alnum = string.ascii_letters + string.digits
    values = {
        "vault_app_secret_key": secrets.token_urlsafe(50),
        "vault_db_password": secrets.token_urlsafe(24),
        "vault_broker_password": secrets.token_urlsafe(24),
        "vault_flower_password": secrets.token_urlsafe(18),
        "vault_s3_access_key_id": "".join(secrets.choice(alnum) for _ in range(20)),
        "vault_s3_secret_access_key": secrets.token_urlsafe(32),
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        # JSON is YAML: no quoting surprises.
        json.dump(values, out, indent=2)
        out.write("\n")
