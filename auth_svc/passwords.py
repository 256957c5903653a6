"""Password hashing: Argon2id through passlib, with rehash-on-verify and a dummy check.

passlib 1.7.4's bcrypt backend breaks with bcrypt >= 5, so bcrypt is not even listed as a
scheme: every hash this service knows is Argon2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from passlib.context import CryptContext


@dataclass(frozen=True)
class Argon2Parameters:
    memory_kib: int = 19_456
    time_cost: int = 2
    parallelism: int = 1


class PasswordHasher:
    """Hashes and verifies passwords. CPU-bound (tens of ms): call it off the event loop."""

    def __init__(self, params: Argon2Parameters = Argon2Parameters()) -> None:
        self.params = params
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=params.memory_kib,
            argon2__time_cost=params.time_cost,
            argon2__parallelism=params.parallelism,
        )
        # Verified against when the user does not exist, so that "no such user" costs the
        # same time as "wrong password".
        self._dummy_hash = self._context.hash("not-a-real-password-only-spends-time")

    def hash(self, password: str) -> str:
        return self._context.hash(password)

    def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one uses outdated parameters, else None)."""
        ok, new_hash = self._context.verify_and_update(password, password_hash)
        return bool(ok), new_hash if ok else None

    def spend_dummy_verify(self, password: str) -> None:
        """Do the work of one verification and discard the result."""
        self._context.verify(password, self._dummy_hash)

    def needs_update(self, password_hash: str) -> bool:
        return bool(self._context.needs_update(password_hash))


COMMON_PASSWORDS_FILE = "common_passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of the most common passwords (lower-case), read once."""
    text = resources.files("auth_svc").joinpath(COMMON_PASSWORDS_FILE).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
