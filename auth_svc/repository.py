"""Queries over the auth tables, for use inside one transaction (a Session)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from auth_svc.domain import UserView, email_key
from auth_svc.orm import User, VerificationCode


class Users:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_email(self, email: str, *, for_update: bool = False) -> User | None:
        query = select(User).where(func.lower(User.email) == email_key(email))
        if for_update:
            # Serialises code requests and checks for one user across instances.
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def exists(self, email: str) -> bool:
        query = select(User.id).where(func.lower(User.email) == email_key(email))
        return self.session.scalars(query).first() is not None

    def add(self, user: User) -> User:
        self.session.add(user)
        # Flush now so a duplicate email fails here, inside the use case, as IntegrityError.
        self.session.flush()
        return user

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
