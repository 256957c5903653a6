"""Sign-up: register an address, mail its verification code (again), verify it."""

from __future__ import annotations

import logging
import uuid

from auth_svc import domain, throttles
from auth_svc.domain import CodeSent, InvalidCode, UserView
from auth_svc.orm import User
from auth_svc.repository import UniqueViolation, view
from auth_svc.use_cases.codes import VERIFY, issue_code, mail_code, usable
from auth_svc.use_cases.context import AuthContext
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import new_email_event

log = logging.getLogger(__name__)


class SignUp:
    """Register, send and verify codes. The answers never depend on whether an address has
    an account, and every step is throttled per address (account or not) and per client
    address (`auth_svc.throttles`). `client` is the caller's network address as the gateway
    saw it ("" when unknown: only the per-address throttles apply)."""

    def __init__(self, context: AuthContext) -> None:
        self.context = context

    def register(self, *, name: str, email: str, password: str, client: str = "") -> UserView | None:
        """Create an unverified user and queue the first verification code mail; when the
        address already has an account, queue a "someone tried to sign up" mail to its
        owner instead, unless the address's cooldown has not passed (a double-click mails
        nothing). The caller answers every case the same way; the result (the new user, or
        None) is for tests and logs only."""
        context = self.context
        name = domain.validate_name(name)
        email = domain.normalise_email(email)
        context.check_new_password(password, personal=(name, email, email.partition("@")[0]))
        t = context.throttles
        requests = throttles.keyed("code_request", email, t.code_request_account, client, None)
        keyed = [*requests, *throttles.keyed("register", email, None, client, t.register_client)]
        may_mail = context.take_mail_slot(keyed, email)
        # Hashed whether or not the address is taken: both answers cost the same.
        password_hash = context.hasher.hash(password)
        result: UserView | None = None
        try:
            with context.repository.transaction() as users:
                holder = users.by_email(email, for_update=True)
                if holder is not None and context.expired(holder):
                    users.remove(holder)
                    holder = None
                if holder is None:
                    user = users.add(
                        User(id=uuid.uuid4(), name=name, email=email, password_hash=password_hash)
                    )
                    # A new account's first code goes whatever the cooldown: it repeats no
                    # mail, and without it the account could not be verified.
                    issue_code(context, users, user)
                    result = users.view_of_new(user)
                elif may_mail and not context.mailed_on_creation(holder):
                    subject, body = domain.signup_attempt_mail(holder.name)
                    users.queue_email(
                        new_email_event(
                            to=holder.email, subject=subject, body=body, kind=email_pb2.EMAIL_KIND_UNSPECIFIED
                        )
                    )
        except UniqueViolation:
            # Another registration of this address won the race: it mails the code.
            pass
        context.on_email_queued()
        if result is not None:
            log.info("user registered", extra={"user_id": str(result.id)})
        return result

    def send_code(self, *, email: str, client: str = "") -> CodeSent:
        """Queue a new verification code mail, replacing any pending code, when the address
        has an unverified account and its cooldown has passed; answer the same in every
        case (`mail_code`)."""
        return mail_code(
            self.context, email, client, purpose=VERIFY, wanted=lambda user: not user.is_verified
        )

    def verify_code(self, *, email: str, code: str, client: str = "") -> UserView:
        """Mark the user verified when `code` is their pending, unexpired, unexhausted code.
        Every failure is the same `InvalidCode` and counts against the address's budget of
        wrong codes (across resends) and the client's."""
        context = self.context
        email = domain.normalise_email(email)
        code = domain.validate_code_format(code)
        t = context.throttles
        keyed = throttles.keyed("code_check", email, t.code_check_account, client, t.code_check_client)
        context.take(keyed)
        result: UserView | None = None
        with context.repository.transaction() as users:
            user = users.by_email(email, for_update=True)
            if user is not None and not user.is_verified and not context.expired(user):
                pending = users.pending_code(user.id)
                if pending is not None and usable(context, pending, VERIFY):
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
        context.succeeded(keyed)
        log.info("user verified", extra={"user_id": str(result.id)})
        return result
