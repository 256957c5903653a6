"""`make certs`: a development CA and a certificate per gRPC service, for (mutual) TLS
between the services. Not for production: there, certificates come from your own CA or
cert-manager, and the CA key never sits next to the services.

    python scripts/make_certs.py [--out var/certs] [--days 825] [--name NAME --dns DNS ...]

Writes ca.pem (the CA certificate every service trusts: GRPC_TLS_CA_FILE), ca.key (keep
it to sign more; no service needs it), and <name>.pem / <name>.key for auth, ocr, gateway
and client (grpcurl, scripts). Each certificate is valid for its compose service name,
localhost and 127.0.0.1, and as both server and client (ocr_svc is both), so the same pair
serves as GRPC_TLS_CERT_FILE / GRPC_TLS_KEY_FILE of that service. Existing files are
replaced only with --force. Keys are readable by their owner only, unless
--readable-keys (for containers that run as another user and bind-mount the directory:
docker-compose.mtls.yml).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Every ocrmesh party that speaks gRPC, by its compose service name; "client" is for people.
DEFAULT_NAMES = ("auth", "ocr", "gateway", "client")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool, readable_keys: bool = False) -> None:
    path.write_bytes(data)
    path.chmod(0o600 if private and not readable_keys else 0o644)


def make_ca(days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocrmesh development CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(
    name: str,
    dns_names: list[str],
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(d) for d in dict.fromkeys([name, *dns_names, "localhost"])
    ]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def make_certs(
    out: Path, names: list[str], extra_dns: list[str], days: int, force: bool, readable_keys: bool = False
) -> list[Path]:
    """Write the CA and one certificate per name into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / "ca.pem", out / "ca.key"] + [out / f"{n}.{ext}" for n in names for ext in ("pem", "key")]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists; pass --force to replace the certificates")
    ca_key, ca_cert = make_ca(days)
    _write(out / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(out / "ca.key", _pem_key(ca_key), private=True)
    for name in names:
        key, cert = make_leaf(name, extra_dns, ca_key, ca_cert, days)
        _write(out / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM), private=False)
        _write(out / f"{name}.key", _pem_key(key), private=True, readable_keys=readable_keys)
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("var/certs"))
    parser.add_argument("--days", type=int, default=825)
    parser.add_argument(
        "--name", action="append", help=f"a certificate to make (default: {', '.join(DEFAULT_NAMES)})"
    )
    parser.add_argument(
        "--dns", action="append", default=[], help="another DNS name every certificate is valid for"
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument(
        "--readable-keys",
        action="store_true",
        help="service keys readable by all (bind mounts into containers)",
    )
    args = parser.parse_args(argv)
    try:
        written = make_certs(
            args.out, args.name or list(DEFAULT_NAMES), args.dns, args.days, args.force, args.readable_keys
        )
    except FileExistsError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write("".join(f"  {path}\n" for path in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
