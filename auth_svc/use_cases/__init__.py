"""What auth_svc does, as plain synchronous code over the repository, one module per flow:
sign-up and verification codes (`sign_up`), login and sessions (`sessions`), password
reset and change (`passwords`), user reads (`views`), housekeeping (`housekeeping`).

Each use case validates its input, runs its transactions through `auth_svc.repository`
(which holds every statement), and raises `domain` exceptions for every outcome the caller
must hear about. They block (SQL, Argon2): the gRPC servicer runs them in a thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from auth_svc.use_cases.codes import RESET, VERIFY
from auth_svc.use_cases.context import AuthContext, Clock, CodePolicy, utc_now
from auth_svc.use_cases.housekeeping import Housekeeping
from auth_svc.use_cases.passwords import Passwords
from auth_svc.use_cases.sessions import Sessions
from auth_svc.use_cases.sign_up import SignUp
from auth_svc.use_cases.views import Views, user_key


@dataclass(frozen=True)
class UseCases:
    """Every flow, over one shared context (what the servicer and the relay call)."""

    sign_up: SignUp
    sessions: Sessions
    passwords: Passwords
    views: Views
    housekeeping: Housekeeping

    @classmethod
    def of(cls, context: AuthContext) -> UseCases:
        return cls(
            sign_up=SignUp(context),
            sessions=Sessions(context),
            passwords=Passwords(context),
            views=Views(context),
            housekeeping=Housekeeping(context),
        )


__all__ = [
    "RESET",
    "VERIFY",
    "AuthContext",
    "Clock",
    "CodePolicy",
    "Housekeeping",
    "Passwords",
    "Sessions",
    "SignUp",
    "UseCases",
    "Views",
    "user_key",
    "utc_now",
]
