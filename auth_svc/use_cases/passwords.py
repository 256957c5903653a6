"""Passwords: reset one with a mailed code, change one knowing the current one. Either way
every session of the user ends and the owner is mailed."""

from __future__ import annotations

import logging

from auth_svc import domain, throttles
from auth_svc.domain import CodeSent, InvalidCode, InvalidCredentials, IssuedToken, UserGone
from auth_svc.orm import User
from auth_svc.repository import Users
from auth_svc.use_cases.codes import RESET, mail_code, usable
from auth_svc.use_cases.context import AuthContext
from auth_svc.use_cases.views import user_key
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import new_email_event

log = logging.getLogger(__name__)


class Passwords:
    """Reset and change passwords, throttled like code checks and logins
    (`auth_svc.throttles`); `client` as in `SignUp`."""

    def __init__(self, context: AuthContext) -> None:
        self.context = context

    def request_password_reset(self, *, email: str, client: str = "") -> CodeSent:
        """Queue a reset code mail when the address has an account and its cooldown has
        passed; answer the same always (`mail_code`)."""
        return mail_code(self.context, email, client, purpose=RESET, wanted=lambda user: True)

    def reset_password(self, *, email: str, code: str, new_password: str, client: str = "") -> None:
        """Set `new_password` when `code` is the address's pending reset code; the address
        counts as verified (the code proved it), every session ends, the owner is mailed.
        Failures are `InvalidCode`, counted like wrong verification codes."""
        context = self.context
        email = domain.normalise_email(email)
        code = domain.validate_code_format(code)
        context.check_new_password(new_password, personal=(email, email.partition("@")[0]))
        t = context.throttles
        keyed = throttles.keyed("code_check", email, t.code_check_account, client, t.code_check_client)
        context.take(keyed)
        # Hashed before the code is known to be right: every answer costs the same.
        new_hash = context.hasher.hash(new_password)
        done = False
        with context.repository.transaction() as users:
            user = users.by_email(email, for_update=True)
            pending = users.pending_code(user.id) if user is not None and not context.expired(user) else None
            if user is not None and pending is not None and usable(context, pending, RESET):
                if domain.code_matches(code, salt=pending.salt, user_id=user.id, expected=pending.code_hash):
                    user.password_hash = new_hash
                    user.is_verified = True
                    context.end_sessions(user)
                    users.delete_code(pending)
                    _mail_password_changed(users, user, "reset")
                    done = True
                else:
                    pending.failed_attempts += 1
        if not done:
            raise InvalidCode()
        context.succeeded(keyed)
        # The owner proved they hold the mailbox: wrong logins by others stop counting.
        context.repository.forgive_throttles([throttles.account_key("login", email)])
        context.on_email_queued()
        log.info("password reset", extra={"user_id": str(user.id) if user else None})

    def change_password(
        self, *, user_id: str, current_password: str, new_password: str, client: str = ""
    ) -> IssuedToken:
        """Set a new password for a signed-in user who knows the current one; every other
        session ends (the epoch rises) and the caller gets a token of the new epoch."""
        context = self.context
        key = user_key(user_id)
        user = context.repository.user(key)
        if user is None:
            raise UserGone()
        context.check_new_password(
            new_password, personal=(user.name, user.email, user.email.partition("@")[0])
        )
        t = context.throttles
        keyed = throttles.keyed("login", user.email, t.login_account, client, t.login_client)
        context.take(keyed)
        ok, _ = context.hasher.verify(current_password, user.password_hash)
        if not ok:
            raise InvalidCredentials()
        context.succeeded(keyed)
        new_hash = context.hasher.hash(new_password)
        with context.repository.transaction() as users:
            stored = users.get(key, for_update=True)
            if stored is None:
                raise UserGone()
            stored.password_hash = new_hash
            context.end_sessions(stored)
            _mail_password_changed(users, stored, "changed")
            epoch, email, name = stored.session_epoch, stored.email, stored.name
        context.on_email_queued()
        log.info("password changed", extra={"user_id": user_id})
        token = context.signer.sign(user_id=key, email=email, name=name, session_epoch=epoch)
        return IssuedToken(token=token, expires_in=context.signer.ttl_seconds)


def _mail_password_changed(users: Users, user: User, how: str) -> None:
    subject, body = domain.password_changed_mail(user.name, how)
    users.queue_email(
        new_email_event(to=user.email, subject=subject, body=body, kind=email_pb2.EMAIL_KIND_UNSPECIFIED)
    )
