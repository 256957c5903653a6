"""Every statement auth_svc's use cases run, behind methods: the use cases hold no SQL.

`AuthRepository` opens the transactions (a use case says where one begins and ends) and
runs the statements that need no ORM object: throttle counters, token revocations, the hot
user read, housekeeping. `Users` is the work inside one transaction: users and their
pending codes as ORM objects (changed in place, written at commit) and the outbox rows
that go with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from auth_svc import throttles
from auth_svc.db import read
from auth_svc.domain import UserView, email_key
from auth_svc.orm import RevokedToken, User, VerificationCode
from auth_svc.outbox import enqueue_email
from auth_svc.throttles import Cooldown, Count, Keyed
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.tokens import Revocations

# SQLSTATE of a unique index refusing a row (psycopg2 ships no type stubs to import it from).
_UNIQUE_VIOLATION = "23505"


class UniqueViolation(Exception):
    """A unique index refused a row: a concurrent transaction wrote it first."""


class Users:
    """Users, their pending codes and the outbox, inside one transaction (a Session)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_email(self, email: str, *, for_update: bool = False) -> User | None:
        query = select(User).where(func.lower(User.email) == email_key(email))
        if for_update:
            # Serialises code requests and checks for one user across instances.
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        if for_update:
            return self.session.get(User, user_id, with_for_update=True)
        return self.session.get(User, user_id)

    def add(self, user: User) -> User:
        self.session.add(user)
        # Flush now so a duplicate email fails here, inside the use case, as a unique violation.
        self.session.flush()
        return user

    def remove(self, user: User) -> None:
        self.session.delete(user)
        # At once: a new user of the same address may be added next in this transaction.
        self.session.flush()

    def view_of_new(self, user: User) -> UserView:
        """`user`, added in this transaction, as the outside sees it: what is pending is
        written first, so the columns the server fills (`created_at`) can be read."""
        self.session.flush()
        return view(user)

    def pending_code(self, user_id: uuid.UUID) -> VerificationCode | None:
        return self.session.get(VerificationCode, user_id)

    def replace_code(self, code: VerificationCode) -> None:
        existing = self.session.get(VerificationCode, code.user_id)
        if existing is not None:
            self.session.delete(existing)
            self.session.flush()
        self.session.add(code)

    def delete_code(self, code: VerificationCode) -> None:
        self.session.delete(code)

    def queue_email(self, event: email_pb2.EmailRequested) -> None:
        """Mail `event` if and only if this transaction commits (the outbox)."""
        enqueue_email(self.session, event)


def view(user: User) -> UserView:
    return UserView(
        id=user.id,
        name=user.name,
        email=user.email,
        is_verified=user.is_verified,
        created_at=user.created_at,
    )


# The hot read (every GetCurrentUser): a Core statement, compiled once and cached, whose
# rows become views directly, without an ORM session, identity map or instance. Several
# ids at once: concurrent lookups are answered by one query (`UserLookups`).
_USER_VIEWS_BY_IDS = select(User.id, User.name, User.email, User.is_verified, User.created_at).where(
    User.id.in_(bindparam("user_ids", expanding=True))
)


def user_views_by_ids(connection: Connection, user_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserView]:
    rows = connection.execute(_USER_VIEWS_BY_IDS, {"user_ids": list(user_ids)})
    return {
        row.id: UserView(
            id=row.id, name=row.name, email=row.email, is_verified=row.is_verified, created_at=row.created_at
        )
        for row in rows
    }


# The throttle counters (`auth_svc.throttles`): raw statements, a few per attempt.
_CREATE_COUNT = text(
    "INSERT INTO auth_throttles (key, events, window_start, last_event_at) "
    "VALUES (:key, 0, :now, :now) ON CONFLICT (key) DO NOTHING"
)
_LOCK_COUNT = text(
    "SELECT events, window_start, last_event_at, locked_until FROM auth_throttles WHERE key = :key FOR UPDATE"
)
_GIVE_BACK = text(
    "UPDATE auth_throttles SET events = greatest(events - 1, 0) WHERE key = :key AND locked_until IS NULL"
)
_UPDATE_COUNT = text(
    "UPDATE auth_throttles SET events = :events, window_start = :window_start, "
    "last_event_at = :now, locked_until = :locked_until WHERE key = :key"
)
_CLEAR = text("DELETE FROM auth_throttles WHERE key = :key")
_PURGE_COUNTS = text(
    "DELETE FROM auth_throttles WHERE last_event_at < :before "
    "AND (locked_until IS NULL OR locked_until < :now)"
)


def _locked_count(connection: Connection, key: str, now: datetime) -> Count:
    """`key`'s row (made when missing), locked until the transaction ends."""
    connection.execute(_CREATE_COUNT, {"key": key, "now": now})
    row = connection.execute(_LOCK_COUNT, {"key": key}).one()
    return Count(
        events=row.events,
        window_start=row.window_start,
        last_event_at=row.last_event_at,
        locked_until=row.locked_until,
    )


def _store_count(connection: Connection, key: str, count: Count) -> None:
    connection.execute(
        _UPDATE_COUNT,
        {
            "key": key,
            "events": count.events,
            "window_start": count.window_start,
            "now": count.last_event_at,
            "locked_until": count.locked_until,
        },
    )


class AuthRepository:
    """auth_svc's tables, as the use cases see them."""

    def __init__(self, sessions: sessionmaker[Session], *, reads: Engine | None = None) -> None:
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        # Reads that need no transaction: an autocommit engine (`db.make_engine`), or the
        # sessions' own engine, which works too at two more round trips a read.
        self.reads: Engine = reads if reads is not None else self.engine

    # -- transactions over users and codes -----------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Users]:
        """One transaction (READ COMMITTED), committed when the block ends and rolled back
        when it raises; `UniqueViolation` when a unique index refused a row."""
        try:
            with self.sessions.begin() as session:
                yield Users(session)
        except IntegrityError as exc:
            if getattr(exc.orig, "pgcode", None) != _UNIQUE_VIOLATION:
                raise
            raise UniqueViolation(str(exc.orig)) from exc

    def user_by_email(self, email: str) -> User | None:
        """The user of `email`, read in a short session of its own (no lock held after)."""
        with self.sessions() as session:
            return Users(session).by_email(email)

    def user(self, user_id: uuid.UUID) -> User | None:
        """The user `user_id` names, read in a short session of its own."""
        with self.sessions() as session:
            return session.get(User, user_id)

    # -- reads outside any transaction ---------------------------------------------------
    def user_views(self, user_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, UserView]:
        """The users of `user_ids` that exist, in one query."""
        return read(self.reads, lambda connection: user_views_by_ids(connection, user_ids))

    def revocations(self, *, now: datetime, epochs_since: datetime) -> Revocations:
        """Revoked tokens not yet expired at `now`, and the epochs changed after `epochs_since`."""

        def query(connection: Connection) -> Revocations:
            ids = connection.execute(
                select(RevokedToken.token_id).where(RevokedToken.expires_at > now)
            ).scalars()
            epochs = connection.execute(
                select(User.id, User.session_epoch).where(User.epoch_changed_at > epochs_since)
            ).all()
            return Revocations(
                token_ids=frozenset(ids), epochs={str(row.id): row.session_epoch for row in epochs}
            )

        return read(self.reads, query)

    # -- statements in a transaction of their own ----------------------------------------
    def revoke_token(self, token_id: str, expires_at: datetime) -> None:
        """Refuse the token `token_id` until `expires_at` (its own `exp`); again is no error."""
        with self.engine.begin() as connection:
            connection.execute(
                pg_insert(RevokedToken)
                .values(token_id=token_id[:64], expires_at=expires_at)
                .on_conflict_do_nothing()
            )

    def take_throttles(
        self, keyed: Keyed, now: datetime, *, cooldown: tuple[str, Cooldown] | None = None
    ) -> bool:
        """Check and count one event at `now` on every key, atomically, under the keys' row
        locks (taken in key order): `Throttled` (and nothing counted) when any key must wait
        or is locked (`throttles.take`). With a `cooldown` (its key and policy), in the same
        transaction: whether its slot was free, and then taken (always True without one)."""
        with self.engine.begin() as connection:
            keys = {key for key, _policy in keyed} | ({cooldown[0]} if cooldown else set())
            counts = {key: _locked_count(connection, key, now) for key in sorted(keys)}
            for key, count in throttles.take(keyed, counts, now).items():
                _store_count(connection, key, count)
            if cooldown is None:
                return True
            key, policy = cooldown
            slot = policy.take(counts[key], now)
            if slot is not None:
                _store_count(connection, key, slot)
            return slot is not None

    def forgive_throttles(self, keys: Sequence[str]) -> None:
        """An attempt counted on `keys` was right: in one transaction, each key is cleared or
        gives its event back (`throttles.cleared_on_success`)."""
        with self.engine.begin() as connection:
            for key in keys:
                if throttles.cleared_on_success(key):
                    connection.execute(_CLEAR, {"key": key})
                else:
                    connection.execute(_GIVE_BACK, {"key": key})

    def purge_expired(
        self, *, now: datetime, unverified_before: datetime, idle_counts: timedelta = timedelta(days=1)
    ) -> int:
        """In one transaction: delete throttle rows idle for `idle_counts` that lock nothing,
        tokens revoked until before `now`, and unverified users created before
        `unverified_before`. Returns how many users went."""
        with self.engine.begin() as connection:
            connection.execute(_PURGE_COUNTS, {"before": now - idle_counts, "now": now})
            connection.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
            result = connection.execute(
                delete(User).where(User.is_verified.is_(False), User.created_at <= unverified_before)
            )
        return int(getattr(result, "rowcount", 0) or 0)
