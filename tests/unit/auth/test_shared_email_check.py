"""Issue 15: auth_svc accepts exactly the addresses the notifier can mail (one check,
`ocrmesh.rules.emails`): a non-ASCII local part is refused at sign-up, an IDN domain is fine."""

from __future__ import annotations

import pytest

from auth_svc import domain
from ocrmesh.rules.emails import InvalidEmail, check_email


def test_a_non_ascii_local_part_is_refused_by_both() -> None:
    with pytest.raises(InvalidEmail):
        check_email("ünïcode@example.com")
    with pytest.raises(domain.InvalidInput, match="invalid email"):
        domain.normalise_email("ünïcode@example.com")


def test_an_internationalised_domain_is_accepted_and_mailed_in_punycode() -> None:
    checked = check_email(" ada@Bücher.example ")
    assert checked.normalized == "ada@bücher.example"
    assert checked.ascii == "ada@xn--bcher-kva.example"
    assert domain.normalise_email("ada@Bücher.example") == "ada@bücher.example"


@pytest.mark.parametrize(("raw", "reason"), [("", "required"), ("a" * 250 + "@example.com", "longer than")])
def test_empty_and_oversized_addresses_say_why(raw: str, reason: str) -> None:
    with pytest.raises(domain.InvalidInput, match=reason):
        domain.normalise_email(raw)
