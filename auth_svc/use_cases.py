"""What auth_svc does, as plain synchronous functions over a database session factory.

Each use case validates its input, runs in one transaction, and raises `domain` exceptions
for every outcome the caller must hear about. They block (SQL, Argon2): the gRPC
servicer runs them in a thread pool.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from auth_svc import domain
from auth_svc.db import read
from auth_svc.domain import (
    AlreadyVerified,
    CodeExpired,
    CodeSent,
    EmailTaken,
    InvalidCode,
    InvalidCredentials,
    InvalidInput,
    IssuedToken,
    NoCodePending,
    NotVerified,
    ResendTooSoon,
    TooManyAttempts,
    UserGone,
    UserNotFound,
    UserView,
)
from auth_svc.keys import TokenSigner
from auth_svc.orm import User, VerificationCode
from auth_svc.outbox import enqueue_email
from auth_svc.passwords import PasswordHasher
from auth_svc.repository import Users, user_views_by_ids, view
from ocrmesh.events import new_email_event
from ocrmesh.notify.v1 import email_pb2

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# SQLSTATE of a unique index refusing a row (psycopg2 ships no type stubs to import it from).
_UNIQUE_VIOLATION = "23505"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CodePolicy:
    ttl_seconds: int = 600
    resend_cooldown_seconds: int = 60
    max_attempts: int = 5


class AuthUseCases:
    """Register, log in, send and verify codes, look users up."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        hasher: PasswordHasher,
        signer: TokenSigner,
        *,
        code_policy: CodePolicy = CodePolicy(),
        password_min_length: int = 8,
        clock: Clock = utc_now,
        on_email_queued: Callable[[], None] = lambda: None,
        new_code: Callable[[], str] = domain.new_code,
        reads: Engine | None = None,
    ) -> None:
        self.sessions = sessions
        # Reads that need no transaction: an autocommit engine (`db.make_engine`), or the
        # sessions' own engine, which works too at two more round trips a read.
        self.reads: Engine = reads if reads is not None else sessions.kw["bind"]
        self.new_code = new_code
        self.hasher = hasher
        self.signer = signer
        self.code_policy = code_policy
        self.password_min_length = password_min_length
        self.clock = clock
        # Called after a transaction that queued an email committed (wakes the relay).
        self.on_email_queued = on_email_queued

    # -- register ------------------------------------------------------------------------
    def register(self, *, name: str, email: str, password: str) -> UserView:
        """Create an unverified user and queue the first verification code mail."""
        name = domain.validate_name(name)
        email = domain.normalise_email(email)
        domain.validate_password(password, min_length=self.password_min_length)
        with self.sessions() as session:
            # Cheap early answer; the unique index below is what actually guarantees it.
            if Users(session).exists(email):
                raise EmailTaken()
        password_hash = self.hasher.hash(password)
        try:
            with self.sessions.begin() as session:
                users = Users(session)
                user = users.add(User(id=uuid.uuid4(), name=name, email=email, password_hash=password_hash))
                self._issue_code(session, users, user)
                session.flush()
                result = view(user)
        except IntegrityError as exc:
            if getattr(exc.orig, "pgcode", None) == _UNIQUE_VIOLATION:
                raise EmailTaken() from None
            raise
        self.on_email_queued()
        log.info("user registered", extra={"user_id": str(result.id)})
        return result

    # -- login ---------------------------------------------------------------------------
    def login(self, *, email: str, password: str) -> IssuedToken:
        """A signed token for a verified user with the right password.

        Unknown email and wrong password are the same error and cost the same time.
        """
        if not password:
            raise InvalidInput("password is required")
        if len(password.encode()) > domain.PASSWORD_MAX_BYTES:
            raise InvalidInput(f"password must be at most {domain.PASSWORD_MAX_BYTES} bytes")
        email = domain.normalise_email(email)
        with self.sessions() as session:
            user = Users(session).by_email(email)
        if user is None:
            self.hasher.spend_dummy_verify(password)
            raise InvalidCredentials()
        ok, new_hash = self.hasher.verify(password, user.password_hash)
        if not ok:
            raise InvalidCredentials()
        if new_hash is not None:
            self._store_rehash(user, new_hash)
        # Only after the password matched: otherwise this would tell strangers who exists.
        if not user.is_verified:
            raise NotVerified()
        token = self.signer.sign(user_id=user.id, email=user.email, name=user.name)
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
    def send_code(self, *, email: str) -> CodeSent:
        """Queue a new verification code mail, replacing any pending code."""
        email = domain.normalise_email(email)
        with self.sessions.begin() as session:
            users = Users(session)
            user = _unverified_user(users, email)
            pending = users.pending_code(user.id)
            if pending is not None:
                elapsed = (self.clock() - pending.created_at).total_seconds()
                left = self.code_policy.resend_cooldown_seconds - elapsed
                if left > 0:
                    raise ResendTooSoon(math.ceil(left))
            self._issue_code(session, users, user)
        self.on_email_queued()
        return CodeSent(
            resend_after_seconds=self.code_policy.resend_cooldown_seconds,
            expires_in_seconds=self.code_policy.ttl_seconds,
        )

    def verify_code(self, *, email: str, code: str) -> UserView:
        """Mark the user verified when `code` is their pending, unexpired, unexhausted code."""
        email = domain.normalise_email(email)
        code = domain.validate_code_format(code)
        failure: domain.AuthError | None = None
        with self.sessions.begin() as session:
            users = Users(session)
            user = _unverified_user(users, email)
            pending = users.pending_code(user.id)
            if pending is None:
                raise NoCodePending()
            if pending.failed_attempts >= self.code_policy.max_attempts:
                raise TooManyAttempts()
            if pending.expires_at <= self.clock():
                raise CodeExpired()
            if domain.code_matches(code, salt=pending.salt, user_id=user.id, expected=pending.code_hash):
                user.is_verified = True
                users.delete_code(pending)
                result = view(user)
            else:
                # The attempt must count even though the call fails: commit, then raise.
                pending.failed_attempts += 1
                failure = InvalidCode(self.code_policy.max_attempts - pending.failed_attempts)
        if failure is not None:
            raise failure
        log.info("user verified", extra={"user_id": str(result.id)})
        return result

    def _issue_code(self, session: Session, users: Users, user: User) -> None:
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
            )
        )
        subject, body = domain.verification_mail(user.name, code, self.code_policy.ttl_seconds)
        event = new_email_event(
            to=user.email,
            subject=subject,
            body=body,
            kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE,
        )
        enqueue_email(session, event)

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


def _unverified_user(users: Users, email: str) -> User:
    """The user with `email`, row-locked for the code change; refuses unknown and verified users."""
    user = users.by_email(email, for_update=True)
    if user is None:
        raise UserNotFound()
    if user.is_verified:
        raise AlreadyVerified()
    return user
