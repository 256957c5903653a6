"""What auth_svc does, as plain synchronous functions over a database session factory.

Each use case validates its input, runs in one transaction, and raises `domain` exceptions
for every outcome the caller must hear about. They block (SQL, Argon2): the gRPC
servicer runs them in a thread pool.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from auth_svc import domain, throttles
from auth_svc.db import read
from auth_svc.domain import (
    CodeSent,
    InvalidCode,
    InvalidCredentials,
    InvalidInput,
    IssuedToken,
    NotVerified,
    UserGone,
    UserView,
)
from auth_svc.keys import TokenSigner
from auth_svc.orm import RevokedToken, User, VerificationCode
from auth_svc.outbox import enqueue_email
from auth_svc.passwords import PasswordHasher, common_passwords
from auth_svc.repository import Users, user_views_by_ids, view
from auth_svc.throttles import Throttles
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import new_email_event
from ocrmesh.rules.tokens import Revocations

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# SQLSTATE of a unique index refusing a row (psycopg2 ships no type stubs to import it from).
_UNIQUE_VIOLATION = "23505"


# What a pending code is for: a code only works for its own purpose.
VERIFY = "verify"
RESET = "reset"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CodePolicy:
    ttl_seconds: int = 600
    resend_cooldown_seconds: int = 60
    max_attempts: int = 5


class AuthUseCases:
    """Register, log in, send and verify codes, look users up.

    Answers never depend on whether an address has an account (register, code sending
    and code checking answer alike; login costs the same), and every entry point that can
    be guessed at is throttled per account and per client address (`auth_svc.throttles`).
    `client` is the caller's network address as the gateway saw it ("" when unknown: only
    the per-account throttles apply).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        hasher: PasswordHasher,
        signer: TokenSigner,
        *,
        code_policy: CodePolicy = CodePolicy(),
        password_min_length: int = 12,
        clock: Clock = utc_now,
        on_email_queued: Callable[[], None] = lambda: None,
        new_code: Callable[[], str] = domain.new_code,
        reads: Engine | None = None,
        throttle_policies: Throttles | None = None,
        unverified_ttl_seconds: int = 24 * 3600,
        common: frozenset[str] | None = None,
    ) -> None:
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        # Reads that need no transaction: an autocommit engine (`db.make_engine`), or the
        # sessions' own engine, which works too at two more round trips a read.
        self.reads: Engine = reads if reads is not None else self.engine
        self.new_code = new_code
        self.hasher = hasher
        self.signer = signer
        self.code_policy = code_policy
        self.password_min_length = password_min_length
        self.clock = clock
        # Called after a transaction that queued an email committed (wakes the relay).
        self.on_email_queued = on_email_queued
        self.throttles = throttle_policies or Throttles.defaults(
            resend_cooldown_seconds=code_policy.resend_cooldown_seconds
        )
        self.unverified_ttl = timedelta(seconds=unverified_ttl_seconds)
        self.common_passwords = common_passwords() if common is None else common

    # -- throttles -----------------------------------------------------------------------
    def _take(self, keyed: throttles.Keyed) -> None:
        """Count this attempt on every key before doing its work, or refuse it (Throttled)."""
        with self.engine.begin() as connection:
            throttles.take(connection, keyed, self.clock())

    def _succeeded(self, keyed: throttles.Keyed) -> None:
        """The attempt was right: the account's count is cleared, the client's given back."""
        with self.engine.begin() as connection:
            for key, _policy in keyed:
                if ":account:" in key:
                    throttles.clear(connection, key)
                else:
                    throttles.give_back(connection, key)

    @staticmethod
    def _keyed(
        action: str,
        email: str,
        account: throttles.ThrottlePolicy | None,
        client: str,
        per_client: throttles.ThrottlePolicy | None,
    ) -> throttles.Keyed:
        keyed: list[tuple[str, throttles.ThrottlePolicy]] = []
        if account is not None:
            keyed.append((f"{action}:account:{domain.email_key(email)}", account))
        if per_client is not None and client:
            keyed.append((f"{action}:client:{client[:100]}", per_client))
        return keyed  # fmt: skip

    def _expired(self, user: User) -> bool:
        """An unverified account past its time: it holds its address no more."""
        return not user.is_verified and user.created_at <= self.clock() - self.unverified_ttl

    # -- register ------------------------------------------------------------------------
    def register(self, *, name: str, email: str, password: str, client: str = "") -> UserView | None:
        """Create an unverified user and queue the first verification code mail; when the
        address already has an account, queue a "someone tried to sign up" mail to its
        owner instead. The caller answers both the same way; the result (the new user, or
        None) is for tests and logs only."""
        name = domain.validate_name(name)
        email = domain.normalise_email(email)
        domain.validate_password(
            password,
            min_length=self.password_min_length,
            common=self.common_passwords,
            personal=(name, email, email.partition("@")[0]),
        )
        t = self.throttles
        sends = self._keyed("code_send", email, t.code_send_account, client, None)
        keyed = [*sends, *self._keyed("register", email, None, client, t.register_client)]
        self._take(keyed)
        # Hashed whether or not the address is taken: both answers cost the same.
        password_hash = self.hasher.hash(password)
        result: UserView | None = None
        try:
            with self.sessions.begin() as session:
                users = Users(session)
                holder = users.by_email(email, for_update=True)
                if holder is not None and self._expired(holder):
                    session.delete(holder)
                    session.flush()
                    holder = None
                if holder is None:
                    user = users.add(
                        User(id=uuid.uuid4(), name=name, email=email, password_hash=password_hash)
                    )
                    self._issue_code(session, users, user)
                    session.flush()
                    result = view(user)
                else:
                    subject, body = domain.signup_attempt_mail(holder.name)
                    enqueue_email(
                        session,
                        new_email_event(
                            to=holder.email, subject=subject, body=body, kind=email_pb2.EMAIL_KIND_UNSPECIFIED
                        ),
                    )
        except IntegrityError as exc:
            # Another registration of this address won the race: it mails the code.
            if getattr(exc.orig, "pgcode", None) != _UNIQUE_VIOLATION:
                raise
        self.on_email_queued()
        if result is not None:
            log.info("user registered", extra={"user_id": str(result.id)})
        return result

    # -- login ---------------------------------------------------------------------------
    def login(self, *, email: str, password: str, client: str = "") -> IssuedToken:
        """A signed token for a verified user with the right password.

        Unknown email and wrong password are the same error and cost the same time; both
        count against the address's and the client's throttles.
        """
        if not password:
            raise InvalidInput("password is required")
        if len(password.encode()) > domain.PASSWORD_MAX_BYTES:
            raise InvalidInput(f"password must be at most {domain.PASSWORD_MAX_BYTES} bytes")
        email = domain.normalise_email(email)
        t = self.throttles
        keyed = self._keyed("login", email, t.login_account, client, t.login_client)
        self._take(keyed)
        with self.sessions() as session:
            user = Users(session).by_email(email)
        if user is not None and self._expired(user):
            user = None
        if user is None:
            self.hasher.spend_dummy_verify(password)
            raise InvalidCredentials()
        ok, new_hash = self.hasher.verify(password, user.password_hash)
        if not ok:
            raise InvalidCredentials()
        self._succeeded(keyed)
        if new_hash is not None:
            self._store_rehash(user, new_hash)
        # Only after the password matched: otherwise this would tell strangers who exists.
        if not user.is_verified:
            raise NotVerified()
        token = self.signer.sign(
            user_id=user.id, email=user.email, name=user.name, session_epoch=user.session_epoch
        )
        log.info("user logged in", extra={"user_id": str(user.id)})
        return IssuedToken(token=token, expires_in=self.signer.ttl_seconds)

    def _store_rehash(self, user: User, new_hash: str) -> None:
        with self.sessions.begin() as session:
            stored = session.get(User, user.id, with_for_update=True)
            # Another login may have rehashed (or the user changed the password) meanwhile.
            if stored is not None and stored.password_hash == user.password_hash:
                stored.password_hash = new_hash
        log.info("password rehashed with current parameters", extra={"user_id": str(user.id)})

    # -- codes ---------------------------------------------------------------------------
    def send_code(self, *, email: str, client: str = "") -> CodeSent:
        """Queue a new verification code mail, replacing any pending code, when the address
        has an unverified account; answer the same in every case."""
        return self._mail_code(email, client, purpose=VERIFY, wanted=lambda user: not user.is_verified)

    def _mail_code(
        self, email: str, client: str, *, purpose: str, wanted: Callable[[User], bool]
    ) -> CodeSent:
        """Throttled like every code send (one per cooldown per address): a code for
        `purpose` to the address's live account when `wanted(user)`; the same answer always."""
        email = domain.normalise_email(email)
        t = self.throttles
        keyed = self._keyed("code_send", email, t.code_send_account, client, t.code_send_client)
        self._take(keyed)
        queued = False
        with self.sessions.begin() as session:
            users = Users(session)
            user = users.by_email(email, for_update=True)
            if user is not None and wanted(user) and not self._expired(user):
                self._issue_code(session, users, user, purpose=purpose)
                queued = True
        if queued:
            self.on_email_queued()
        return CodeSent(
            resend_after_seconds=self.code_policy.resend_cooldown_seconds,
            expires_in_seconds=self.code_policy.ttl_seconds,
        )

    def verify_code(self, *, email: str, code: str, client: str = "") -> UserView:
        """Mark the user verified when `code` is their pending, unexpired, unexhausted code.
        Every failure is the same `InvalidCode` and counts against the address's budget of
        wrong codes (across resends) and the client's."""
        email = domain.normalise_email(email)
        code = domain.validate_code_format(code)
        t = self.throttles
        keyed = self._keyed("code_check", email, t.code_check_account, client, t.code_check_client)
        self._take(keyed)
        result: UserView | None = None
        with self.sessions.begin() as session:
            users = Users(session)
            user = users.by_email(email, for_update=True)
            if user is not None and not user.is_verified and not self._expired(user):
                pending = users.pending_code(user.id)
                if (
                    pending is not None
                    and pending.purpose == VERIFY
                    and pending.failed_attempts < self.code_policy.max_attempts
                    and pending.expires_at > self.clock()
                ):
                    if domain.code_matches(
                        code, salt=pending.salt, user_id=user.id, expected=pending.code_hash
                    ):
                        user.is_verified = True
                        users.delete_code(pending)
                        result = view(user)
                    else:
                        # The attempt must count even though the call fails: commit, then raise.
                        pending.failed_attempts += 1
        if result is None:
            raise InvalidCode()
        self._succeeded(keyed)
        log.info("user verified", extra={"user_id": str(result.id)})
        return result

    # -- password reset, change, sessions ------------------------------------------------
    def request_password_reset(self, *, email: str, client: str = "") -> CodeSent:
        """Queue a reset code mail when the address has an account; answer the same always.
        Throttled like code sending (one per cooldown per address)."""
        return self._mail_code(email, client, purpose=RESET, wanted=lambda user: True)

    def reset_password(self, *, email: str, code: str, new_password: str, client: str = "") -> None:
        """Set `new_password` when `code` is the address's pending reset code; the address
        counts as verified (the code proved it), every session ends, the owner is mailed.
        Failures are `InvalidCode`, counted like wrong verification codes."""
        email = domain.normalise_email(email)
        code = domain.validate_code_format(code)
        domain.validate_password(
            new_password,
            min_length=self.password_min_length,
            common=self.common_passwords,
            personal=(email, email.partition("@")[0]),
        )
        t = self.throttles
        keyed = self._keyed("code_check", email, t.code_check_account, client, t.code_check_client)
        self._take(keyed)
        # Hashed before the code is known to be right: every answer costs the same.
        new_hash = self.hasher.hash(new_password)
        done = False
        with self.sessions.begin() as session:
            users = Users(session)
            user = users.by_email(email, for_update=True)
            pending = users.pending_code(user.id) if user is not None and not self._expired(user) else None
            if (
                user is not None
                and pending is not None
                and pending.purpose == RESET
                and pending.failed_attempts < self.code_policy.max_attempts
                and pending.expires_at > self.clock()
            ):
                if domain.code_matches(code, salt=pending.salt, user_id=user.id, expected=pending.code_hash):
                    user.password_hash = new_hash
                    user.is_verified = True
                    self._bump_epoch(user)
                    users.delete_code(pending)
                    self._mail_password_changed(session, user, "reset")
                    done = True
                else:
                    pending.failed_attempts += 1
        if not done:
            raise InvalidCode()
        self._succeeded(keyed)
        with self.engine.begin() as connection:
            # The owner proved they hold the mailbox: wrong logins by others stop counting.
            throttles.clear(connection, f"login:account:{domain.email_key(email)}")
        self.on_email_queued()
        log.info("password reset", extra={"user_id": str(user.id) if user else None})

    def change_password(
        self, *, user_id: str, current_password: str, new_password: str, client: str = ""
    ) -> IssuedToken:
        """Set a new password for a signed-in user who knows the current one; every other
        session ends (the epoch rises) and the caller gets a token of the new epoch."""
        key = user_key(user_id)
        with self.sessions() as session:
            user = session.get(User, key)
        if user is None:
            raise UserGone()
        domain.validate_password(
            new_password,
            min_length=self.password_min_length,
            common=self.common_passwords,
            personal=(user.name, user.email, user.email.partition("@")[0]),
        )
        t = self.throttles
        keyed = self._keyed("login", user.email, t.login_account, client, t.login_client)
        self._take(keyed)
        ok, _ = self.hasher.verify(current_password, user.password_hash)
        if not ok:
            raise InvalidCredentials()
        self._succeeded(keyed)
        new_hash = self.hasher.hash(new_password)
        with self.sessions.begin() as session:
            stored = session.get(User, key, with_for_update=True)
            if stored is None:
                raise UserGone()
            stored.password_hash = new_hash
            self._bump_epoch(stored)
            self._mail_password_changed(session, stored, "changed")
            epoch, email, name = stored.session_epoch, stored.email, stored.name
        self.on_email_queued()
        log.info("password changed", extra={"user_id": user_id})
        token = self.signer.sign(user_id=key, email=email, name=name, session_epoch=epoch)
        return IssuedToken(token=token, expires_in=self.signer.ttl_seconds)

    def logout(self, *, user_id: str, token_id: str, expires_at: datetime, everywhere: bool) -> None:
        """Revoke one token (until its `exp`) or, `everywhere`, every token of the user."""
        if everywhere:
            with self.sessions.begin() as session:
                user = session.get(User, user_key(user_id), with_for_update=True)
                if user is None:
                    raise UserGone()
                self._bump_epoch(user)
        else:
            with self.engine.begin() as connection:
                connection.execute(
                    pg_insert(RevokedToken)
                    .values(token_id=token_id[:64], expires_at=expires_at)
                    .on_conflict_do_nothing()
                )
        log.info("logged out", extra={"user_id": user_id, "everywhere": everywhere})

    def revocations(self) -> Revocations:
        """What verifiers must refuse now: revoked tokens not yet expired, and the epochs
        that changed within a token's lifetime (older changes concern expired tokens only)."""
        now = self.clock()
        since = now - timedelta(seconds=self.signer.ttl_seconds + 300)

        def query(connection: Connection) -> Revocations:
            ids = connection.execute(
                select(RevokedToken.token_id).where(RevokedToken.expires_at > now)
            ).scalars()
            epochs = connection.execute(
                select(User.id, User.session_epoch).where(User.epoch_changed_at > since)
            ).all()
            return Revocations(
                token_ids=frozenset(ids), epochs={str(row.id): row.session_epoch for row in epochs}
            )

        return read(self.reads, query)

    def _bump_epoch(self, user: User) -> None:
        user.session_epoch += 1
        user.epoch_changed_at = self.clock()

    def _mail_password_changed(self, session: Session, user: User, how: str) -> None:
        subject, body = domain.password_changed_mail(user.name, how)
        enqueue_email(
            session,
            new_email_event(to=user.email, subject=subject, body=body, kind=email_pb2.EMAIL_KIND_UNSPECIFIED),
        )

    def _issue_code(self, session: Session, users: Users, user: User, *, purpose: str = VERIFY) -> None:
        now = self.clock()
        code = self.new_code()
        salt = domain.new_code_salt()
        users.replace_code(
            VerificationCode(
                user_id=user.id,
                code_hash=domain.hash_code(code, salt=salt, user_id=user.id),
                salt=salt,
                created_at=now,
                expires_at=now + timedelta(seconds=self.code_policy.ttl_seconds),
                failed_attempts=0,
                purpose=purpose,
            )
        )
        if purpose == RESET:
            subject, body = domain.reset_mail(user.name, code, self.code_policy.ttl_seconds)
        else:
            subject, body = domain.verification_mail(user.name, code, self.code_policy.ttl_seconds)
        event = new_email_event(
            to=user.email,
            subject=subject,
            body=body,
            kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE,
        )
        enqueue_email(session, event)

    # -- housekeeping --------------------------------------------------------------------
    def purge_expired(self) -> int:
        """Delete unverified accounts past their time and throttle rows nobody needs."""
        now = self.clock()
        with self.engine.begin() as connection:
            throttles.purge(connection, now)
            connection.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
            result = connection.execute(
                delete(User).where(User.is_verified.is_(False), User.created_at <= now - self.unverified_ttl)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    # -- users ---------------------------------------------------------------------------
    def get_user(self, user_id: str) -> UserView:
        """The user a verified token names."""
        key = user_key(user_id)
        user = self.get_users([key]).get(key)
        if user is None:
            raise UserGone()
        return user

    def get_users(self, user_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserView]:
        """The users of `user_ids` that exist, in one query (concurrent GetCurrentUser calls
        are answered together: `UserLookups`)."""
        return read(self.reads, lambda connection: user_views_by_ids(connection, user_ids))


def user_key(user_id: str) -> uuid.UUID:
    """The id a token's `sub` names; anything else names no user."""
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise UserGone() from None
