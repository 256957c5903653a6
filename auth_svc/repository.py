"""Queries over the auth tables, for use inside one transaction (a Session)."""

from __future__ import annotations

import uuid

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
# row becomes the view directly, without an ORM session, identity map or instance.
_USER_VIEW_BY_ID = select(User.id, User.name, User.email, User.is_verified, User.created_at).where(
    User.id == bindparam("user_id")
)


def user_view_by_id(connection: Connection, user_id: uuid.UUID) -> UserView | None:
    row = connection.execute(_USER_VIEW_BY_ID, {"user_id": user_id}).first()
    if row is None:
        return None
    return UserView(
        id=row.id, name=row.name, email=row.email, is_verified=row.is_verified, created_at=row.created_at
    )
