"""The base of every service's settings class: environment only, validated at start-up."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses add their own; values come from the environment."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    log_level: LogLevel = "INFO"
    # Seconds a stopping server gives in-flight calls before cancelling them.
    shutdown_grace_seconds: float = 10.0


@dataclass(frozen=True)
class GrpcTls:
    """TLS material of one gRPC endpoint, as PEM file paths.

    All None: plaintext (the default, for a mesh on one machine or one private network).
    A server serves TLS with `cert_file` and `key_file`, and with `ca_file` also requires
    every client to present a certificate that CA signed (mutual TLS). A client verifies the
    server against `ca_file` (the system roots without it) and presents `cert_file` and
    `key_file` when set.
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return any(path is not None for path in (self.cert_file, self.key_file, self.ca_file))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GrpcTls:
        """The GRPC_TLS_* variables of `env` (default: this process's environment); empty
        values count as unset. For tools (the health probe, tests) that have no settings class."""
        env = os.environ if env is None else env

        def path(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value) if value else None

        return cls(path("GRPC_TLS_CERT_FILE"), path("GRPC_TLS_KEY_FILE"), path("GRPC_TLS_CA_FILE"))


class GrpcTlsSettings(ServiceSettings):
    """GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE, GRPC_TLS_CA_FILE: the settings of every
    service that serves or calls gRPC (mixed into its settings class). See `GrpcTls`."""

    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    grpc_tls_ca_file: Path | None = None

    @field_validator("grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `${GRPC_TLS_CA_FILE:-}` in compose gives an empty string: no TLS, not Path(".").
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> GrpcTlsSettings:
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together: set both or neither")
        for name in ("grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name.upper()}={path} is not a readable file")
        return self

    @property
    def grpc_tls(self) -> GrpcTls:
        return GrpcTls(self.grpc_tls_cert_file, self.grpc_tls_key_file, self.grpc_tls_ca_file)


class GrpcServerSettings(GrpcTlsSettings):
    """The settings of every service that serves gRPC (mixed into its settings class).

    GRPC_MAX_CONNECTION_AGE_SECONDS: a client connection older than this is asked to go away
    (HTTP/2 GOAWAY, gRPC adds +/-10% jitter), so clients re-resolve their target and spread
    onto replicas added since. GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS: calls still running on
    such a connection get this long to finish; keep it above the longest deadline a caller
    sets (the gateway's OCR_TIMEOUT_SECONDS, 120 s by default), so no OCR stream is cut.
    """

    grpc_max_connection_age_seconds: float = Field(default=300.0, gt=0)
    grpc_max_connection_age_grace_seconds: float = Field(default=150.0, gt=0)


def _valid_grpc_target(target: str) -> str:
    """A gRPC target URI as channels accept it: `host:port`, `dns:///name:port`,
    `ipv4:a:port,b:port`, `ipv6:[::1]:port`, `unix:/path`. Checked for shape only (the
    resolver says the rest when it resolves)."""
    target = target.strip()
    if not target or any(ch.isspace() for ch in target):
        raise ValueError("must be a gRPC target: host:port, dns:///name:port or ipv4:a:port,b:port")
    scheme, sep, rest = target.partition(":")
    if sep and scheme in GRPC_TARGET_SCHEMES:
        if not rest.strip("/"):
            raise ValueError(f"{scheme}: needs an address after it")
        return target
    if target.startswith("[") or target.count(":") == 1:  # host:port, [v6]:port
        host, _, port = target.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return target
    raise ValueError(
        f"{target!r} is not a gRPC target: use host:port, dns:///name:port or ipv4:a:port,b:port"
    )


GRPC_TARGET_SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract")
# AUTH_ADDR, OCR_ADDR: where a client finds a service (any replica of it, see grpc_client).
GrpcTarget = Annotated[str, AfterValidator(_valid_grpc_target)]


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment, or exit with a readable list of what is wrong.

    A bad value stops the process before it serves anything (fail fast), with exit code 2
    and no stack trace.
    """
    try:
        return cls()
    except ValidationError as exc:
        lines = [f"invalid configuration for {cls.__name__}:"]
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]).upper() or "?"
            lines.append(f"  {name}: {error['msg']}")
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2) from None
