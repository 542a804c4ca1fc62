"""Normalisation rules for names and emails."""

from __future__ import annotations

import pytest

from syncd.model import SourceUser, guest_upn_to_email, normalise_name, user_email


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Zoë O'Brien (Contractor) #1", "Zoë O'Brien Contractor 1"),
        ("  Ann   Lee  ", "Ann Lee"),
        ("Jean-Luc Picard, Jr.", "Jean-Luc Picard Jr."),
        ("José\tÁlvarez", "José Álvarez"),
        ("李小龍", "李小龍"),
        ("Anaïs 🚀 Nin", "Anaïs Nin"),
        ("O’Neil", "O’Neil"),
        ("", ""),
        (None, ""),
        ("@#$%", ""),
    ],
)
def test_names_keep_letters_marks_digits_spaces_hyphens_apostrophes_periods(raw, stored):
    assert normalise_name(raw) == stored


def test_combining_marks_are_kept():
    assert normalise_name("Zoe\u0308") == "Zoë"


@pytest.mark.parametrize(
    ("upn", "email"),
    [
        ("alice_fabrikam.com#EXT#@contoso.onmicrosoft.com", "alice@fabrikam.com"),
        ("first_last_fabrikam.com#EXT#@contoso.onmicrosoft.com", "first_last@fabrikam.com"),
        ("alice@contoso.com", "alice@contoso.com"),
    ],
)
def test_guest_upn_becomes_the_home_address(upn, email):
    assert guest_upn_to_email(upn) == email


@pytest.mark.parametrize(
    ("upn", "email"),
    [
        ("Alice.Smith@Contoso.COM", "alice.smith@contoso.com"),
        ("Bob_Fabrikam.com#EXT#@contoso.onmicrosoft.com", "bob@fabrikam.com"),
        ("not-an-address", None),
        ("", None),
        (None, None),
        ("two@at@signs", None),
    ],
)
def test_email_is_the_lowercased_upn_or_none(upn, email):
    assert user_email(SourceUser("x", user_principal_name=upn)) == email


def test_email_attribute_mail():
    person = SourceUser("x", user_principal_name="a@contoso.com", mail="A.Person@Fabrikam.com")
    assert user_email(person, "mail") == "a.person@fabrikam.com"
    assert user_email(SourceUser("x", user_principal_name="a@contoso.com"), "mail") is None


def test_users_stored_as_json_load_back_equal_all_at_once() -> None:
    from syncd.mirror import user_json, users_from_json
    from syncd.model import USER_ATTRIBUTES, SourceUser

    registry = {attribute.graph: None for attribute in USER_ATTRIBUTES}
    users = [
        SourceUser("u1", "ann@contoso.com", None, "Ann \u2028 \"Lee\"", True, {**registry, "jobTitle": "Eng"}),
        SourceUser("u2", None, "bob@contoso.com", None, False, {**registry, "department": "Sales, \u00e9"}),
        SourceUser("u3", "cy@contoso.com", None, "Cy", None, registry),
    ]
    loaded = users_from_json((user.id, user_json(user)) for user in users)
    assert list(loaded) == ["u1", "u2", "u3"]
    assert list(loaded.values()) == users
    assert users_from_json([]) == {}
