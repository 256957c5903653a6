"""Reads: the users a verified token names, answered outside any transaction."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from auth_svc.domain import UserGone, UserView
from auth_svc.use_cases.context import AuthContext


class Views:
    """Look users up (GetCurrentUser)."""

    def __init__(self, context: AuthContext) -> None:
        self.context = context

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
        return self.context.repository.user_views(user_ids)


def user_key(user_id: str) -> uuid.UUID:
    """The id a token's `sub` names; anything else names no user."""
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise UserGone() from None
