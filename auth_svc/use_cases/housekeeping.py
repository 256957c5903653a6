"""Housekeeping: what has expired goes (run by the outbox relay every few minutes)."""

from __future__ import annotations

from auth_svc.use_cases.context import AuthContext


class Housekeeping:
    def __init__(self, context: AuthContext) -> None:
        self.context = context

    def purge_expired(self) -> int:
        """Delete unverified accounts past their time, tokens revoked until a time now past,
        and throttle rows nobody needs. Returns how many accounts went."""
        now = self.context.clock()
        return self.context.repository.purge_expired(
            now=now, unverified_before=now - self.context.unverified_ttl
        )
