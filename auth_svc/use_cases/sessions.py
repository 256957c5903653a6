"""Sessions: log in (a signed token), log out (one token or every one), and the revocations
every token verifier must honour."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from auth_svc import domain, throttles
from auth_svc.domain import InvalidCredentials, InvalidInput, IssuedToken, NotVerified, UserGone
from auth_svc.orm import User
from auth_svc.use_cases.context import AuthContext
from auth_svc.use_cases.views import user_key
from ocrmesh.rules.tokens import Revocations

log = logging.getLogger(__name__)


class Sessions:
    """Log in and out. A login costs the same whether or not the address has an account,
    and counts against the address's and the client's throttles (`auth_svc.throttles`)."""

    def __init__(self, context: AuthContext) -> None:
        self.context = context

    def login(self, *, email: str, password: str, client: str = "") -> IssuedToken:
        """A signed token for a verified user with the right password.

        Unknown email and wrong password are the same error and cost the same time; both
        count against the address's and the client's throttles.
        """
        context = self.context
        if not password:
            raise InvalidInput("password is required")
        if len(password.encode()) > domain.PASSWORD_MAX_BYTES:
            raise InvalidInput(f"password must be at most {domain.PASSWORD_MAX_BYTES} bytes")
        email = domain.normalise_email(email)
        t = context.throttles
        keyed = throttles.keyed("login", email, t.login_account, client, t.login_client)
        context.take(keyed)
        user = context.repository.user_by_email(email)
        if user is not None and context.expired(user):
            user = None
        if user is None:
            context.hasher.spend_dummy_verify(password)
            raise InvalidCredentials()
        ok, new_hash = context.hasher.verify(password, user.password_hash)
        if not ok:
            raise InvalidCredentials()
        context.succeeded(keyed)
        if new_hash is not None:
            self._store_rehash(user, new_hash)
        # Only after the password matched: otherwise this would tell strangers who exists.
        if not user.is_verified:
            raise NotVerified()
        token = context.signer.sign(
            user_id=user.id, email=user.email, name=user.name, session_epoch=user.session_epoch
        )
        log.info("user logged in", extra={"user_id": str(user.id)})
        return IssuedToken(token=token, expires_in=context.signer.ttl_seconds)

    def _store_rehash(self, user: User, new_hash: str) -> None:
        with self.context.repository.transaction() as users:
            stored = users.get(user.id, for_update=True)
            # Another login may have rehashed (or the user changed the password) meanwhile.
            if stored is not None and stored.password_hash == user.password_hash:
                stored.password_hash = new_hash
        log.info("password rehashed with current parameters", extra={"user_id": str(user.id)})

    def logout(self, *, user_id: str, token_id: str, expires_at: datetime, everywhere: bool) -> None:
        """Revoke one token (until its `exp`) or, `everywhere`, every token of the user."""
        if everywhere:
            with self.context.repository.transaction() as users:
                user = users.get(user_key(user_id), for_update=True)
                if user is None:
                    raise UserGone()
                self.context.end_sessions(user)
        else:
            self.context.repository.revoke_token(token_id, expires_at)
        log.info("logged out", extra={"user_id": user_id, "everywhere": everywhere})

    def revocations(self) -> Revocations:
        """What verifiers must refuse now: revoked tokens not yet expired, and the epochs
        that changed within a token's lifetime (older changes concern expired tokens only)."""
        now = self.context.clock()
        since = now - timedelta(seconds=self.context.signer.ttl_seconds + 300)
        return self.context.repository.revocations(now=now, epochs_since=since)
