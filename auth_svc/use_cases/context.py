"""What every auth_svc flow works with: the repository, the password hasher, the token
signer and the policies, with the few steps the flows share (throttles, the expiry of
unverified accounts, ending every session of a user, the rules of a new password)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auth_svc import domain, throttles
from auth_svc.keys import TokenSigner
from auth_svc.orm import User
from auth_svc.passwords import PasswordHasher, common_passwords
from auth_svc.repository import AuthRepository
from auth_svc.throttles import Throttles

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CodePolicy:
    ttl_seconds: int = 600
    resend_cooldown_seconds: int = 60
    max_attempts: int = 5


class AuthContext:
    """The adapters and policies the flows share. `on_email_queued` is called after a
    transaction that queued an email committed (it wakes the outbox relay)."""

    def __init__(
        self,
        repository: AuthRepository,
        hasher: PasswordHasher,
        signer: TokenSigner,
        *,
        code_policy: CodePolicy = CodePolicy(),
        password_min_length: int = 12,
        clock: Clock = utc_now,
        on_email_queued: Callable[[], None] = lambda: None,
        new_code: Callable[[], str] = domain.new_code,
        throttle_policies: Throttles | None = None,
        unverified_ttl_seconds: int = 24 * 3600,
        common: frozenset[str] | None = None,
    ) -> None:
        self.repository = repository
        self.hasher = hasher
        self.signer = signer
        self.code_policy = code_policy
        self.password_min_length = password_min_length
        self.clock = clock
        self.on_email_queued = on_email_queued
        self.new_code = new_code
        self.throttles = throttle_policies or Throttles.defaults(
            resend_cooldown_seconds=code_policy.resend_cooldown_seconds
        )
        self.unverified_ttl = timedelta(seconds=unverified_ttl_seconds)
        self.common_passwords = common_passwords() if common is None else common

    def take(self, keyed: throttles.Keyed) -> None:
        """Count this attempt on every key before doing its work, or refuse it (Throttled)."""
        self.repository.take_throttles(keyed, self.clock())

    def take_mail_slot(self, keyed: throttles.Keyed, email: str) -> bool:
        """Count this request for a mail to `email` on every key (or refuse it: Throttled),
        and say whether the address's cooldown has passed: then its slot is taken and a mail
        may go. Per address, whether or not it has an account: what a request meets never
        depends on one existing."""
        slot = (throttles.account_key("code_send", email), self.throttles.code_send_cooldown)
        return self.repository.take_throttles(keyed, self.clock(), cooldown=slot)

    def succeeded(self, keyed: throttles.Keyed) -> None:
        """The attempt was right: the account's count is cleared, the client's given back."""
        self.repository.forgive_throttles([key for key, _policy in keyed])

    def mailed_on_creation(self, user: User) -> bool:
        """`user` was created inside its address's cooldown: its first code, which goes
        whatever the cooldown, was the address's mail. (A registration racing the one that
        created the account may hold the cooldown slot itself: without this it would mail
        the owner a second time, "someone tried to sign up", for one double-click.)"""
        cooldown = timedelta(seconds=self.throttles.code_send_cooldown.seconds)
        return user.created_at > self.clock() - cooldown

    def expired(self, user: User) -> bool:
        """An unverified account past its time: it holds its address no more."""
        return not user.is_verified and user.created_at <= self.clock() - self.unverified_ttl

    def end_sessions(self, user: User) -> None:
        """Every token `user` holds stops working: the epoch they carry rises."""
        user.session_epoch += 1
        user.epoch_changed_at = self.clock()

    def check_new_password(self, password: str, *, personal: tuple[str, ...]) -> None:
        """`InvalidInput` unless `password` is long enough, not common and none of the
        user's own words (`personal`: name, address)."""
        domain.validate_password(
            password,
            min_length=self.password_min_length,
            common=self.common_passwords,
            personal=personal,
        )
