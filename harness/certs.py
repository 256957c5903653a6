"""Development certificates for TLS tests, made by the very script `make certs` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.repo import ROOT
from ocrmesh.platform.settings import GrpcTls


def make_certs(out: Path, *names: str) -> Path:
    """A CA and a certificate per name (default: the `make certs` set) in `out`."""
    args = [f"--name={name}" for name in names]
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_certs.py"), "--out", str(out), "--force", *args],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return out


def tls_of(certs: Path, name: str, *, ca: Path | None = None) -> GrpcTls:
    """`name`'s certificate and key, trusting `certs`' CA (or `ca`)."""
    return GrpcTls(certs / f"{name}.pem", certs / f"{name}.key", ca or certs / "ca.pem")


def tls_env(tls: GrpcTls) -> dict[str, str]:
    """The GRPC_TLS_* variables that give a service `tls`."""
    return {
        "GRPC_TLS_CERT_FILE": str(tls.cert_file or ""),
        "GRPC_TLS_KEY_FILE": str(tls.key_file or ""),
        "GRPC_TLS_CA_FILE": str(tls.ca_file or ""),
    }
