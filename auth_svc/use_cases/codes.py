"""One-time codes mailed to an address: to verify it (sign-up) or to reset its password.
A user has at most one pending code; a new one replaces it, and a code only works for its
own purpose."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from auth_svc import domain, throttles
from auth_svc.domain import CodeSent
from auth_svc.orm import User, VerificationCode
from auth_svc.repository import Users
from auth_svc.use_cases.context import AuthContext
from ocrmesh.notify.v1 import email_pb2
from ocrmesh.rules.email_events import new_email_event

# What a pending code is for.
VERIFY = "verify"
RESET = "reset"


def issue_code(context: AuthContext, users: Users, user: User, *, purpose: str = VERIFY) -> None:
    """A new code for `purpose` replaces `user`'s pending one, and its mail is queued, in
    the transaction of `users`."""
    now = context.clock()
    code = context.new_code()
    salt = domain.new_code_salt()
    ttl_seconds = context.code_policy.ttl_seconds
    users.replace_code(
        VerificationCode(
            user_id=user.id,
            code_hash=domain.hash_code(code, salt=salt, user_id=user.id),
            salt=salt,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
            failed_attempts=0,
            purpose=purpose,
        )
    )
    if purpose == RESET:
        subject, body = domain.reset_mail(user.name, code, ttl_seconds)
    else:
        subject, body = domain.verification_mail(user.name, code, ttl_seconds)
    users.queue_email(
        new_email_event(
            to=user.email, subject=subject, body=body, kind=email_pb2.EMAIL_KIND_VERIFICATION_CODE
        )
    )


def mail_code(
    context: AuthContext, email: str, client: str, *, purpose: str, wanted: Callable[[User], bool]
) -> CodeSent:
    """A code for `purpose` to the address's live account when `wanted(user)` and the
    address's cooldown has passed; the same answer always. Every request counts against the
    address's and the client's budgets (`auth_svc.throttles`), account or not; one inside the
    cooldown mails nothing."""
    email = domain.normalise_email(email)
    t = context.throttles
    keyed = throttles.keyed("code_request", email, t.code_request_account, client, t.code_request_client)
    if context.take_mail_slot(keyed, email):
        queued = False
        with context.repository.transaction() as users:
            user = users.by_email(email, for_update=True)
            if user is not None and wanted(user) and not context.expired(user):
                issue_code(context, users, user, purpose=purpose)
                queued = True
        if queued:
            context.on_email_queued()
    # The full cooldown even inside it: seconds left would tell that someone asked lately.
    return CodeSent(
        resend_after_seconds=context.code_policy.resend_cooldown_seconds,
        expires_in_seconds=context.code_policy.ttl_seconds,
    )


def usable(context: AuthContext, pending: VerificationCode, purpose: str) -> bool:
    """Whether `pending` is a code for `purpose` that may still be tried: neither used up
    nor expired."""
    return (
        pending.purpose == purpose
        and pending.failed_attempts < context.code_policy.max_attempts
        and pending.expires_at > context.clock()
    )
