#!/usr/bin/env python3
"""Sign a published release with cosign, or verify its signatures: every image and the chart by the
digest in the release record (scripts/release/publish.py), and each image's SBOM (scripts/release/sbom.py)
as a CycloneDX attestation. Verification fails unless every signature checks out against the public key
and names the recorded digest, and every attested SBOM is the one in the record's folder.

cosign is Debian 13's, run by scripts/release/cosign/run.sh. Key pairs: `cosign generate-key-pair` (the
test makes one per run); a password-protected key reads COSIGN_PASSWORD. No transparency log is
reachable from the build machines, so signatures stay out of Rekor unless COSIGN_TLOG=1.

Usage: scripts/release/cosign-release.py sign RELEASE_JSON --key cosign.key
       scripts/release/cosign-release.py verify RELEASE_JSON --key cosign.pub
"""
import argparse
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent / "cosign" / "run.sh"


def cosign(command: str, reference: str, key: Path, *args: str) -> str:
    flags = ["--allow-http-registry", "--allow-insecure-registry"] if reference.startswith(("127.", "localhost")) else []
    tlog = os.environ.get("COSIGN_TLOG") == "1"
    if command in ("sign", "attest"):
        flags += ["--yes", f"--tlog-upload={str(tlog).lower()}"]
    else:
        flags += [f"--insecure-ignore-tlog={str(not tlog).lower()}"]
    env = {**os.environ, "COSIGN_MOUNTS": ":".join(sorted({str(key.parent), *(str(Path(a).parent) for a in args if Path(a).is_file())}))}
    done = subprocess.run([str(RUN), command, "--key", str(key), *flags, *args, reference],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"cosign {command} {reference}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return done.stdout


def subjects(record: dict, folder: Path) -> list[tuple[str, Path | None]]:
    """(repository@digest, its SBOM or None) for every image and the chart."""
    found = [(f"{i['image'].rsplit(':', 1)[0]}@{i['digest']}", folder / i["sbom"] if i.get("sbom") else None)
             for i in record["images"]]
    chart = record["chart"]
    return found + [(f"{chart['ref'].removeprefix('oci://')}@{chart['digest']}", None)]


def verify(reference: str, sbom: Path | None, key: Path) -> None:
    digest = reference.rsplit("@", 1)[1]
    for claim in json.loads(cosign("verify", reference, key)):
        if claim["critical"]["image"]["docker-manifest-digest"] != digest:
            raise RuntimeError(f"{reference}: a signature names {claim['critical']['image']['docker-manifest-digest']}")
    if sbom:
        statements = [json.loads(base64.b64decode(json.loads(line)["payload"]))
                      for line in cosign("verify-attestation", reference, key, "--type", "cyclonedx").splitlines() if line]
        if not any(s["predicate"] == json.loads(sbom.read_text()) for s in statements):
            raise RuntimeError(f"{reference}: no attested SBOM equals {sbom.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["sign", "verify"])
    parser.add_argument("record", type=Path)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    key, problems = args.key.resolve(), []
    for reference, sbom in subjects(record, args.record.parent.resolve()):
        try:
            if args.action == "sign":
                cosign("sign", reference, key)
                if sbom:
                    cosign("attest", reference, key, "--type", "cyclonedx", "--predicate", str(sbom))
            else:
                verify(reference, sbom, key)
            print(f"    {'signed' if args.action == 'sign' else 'verified'} {reference}{' and its SBOM' if sbom else ''}")
        except RuntimeError as exc:
            problems.append(str(exc))
    if problems:
        sys.exit(f"ERROR: {args.action} failed:\n  " + "\n  ".join(problems))
    if args.action == "sign":
        record["signed_with"] = key.with_suffix(".pub").name
        args.record.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
