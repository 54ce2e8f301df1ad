"""api/names.py: every spelling of one name shares a key; different names do not (issue 19's evasions)."""

from __future__ import annotations

import unicodedata

import pytest

from api.names import canonical_key, name_keys, visible


def same_person(a: str, b: str) -> bool:
    return bool(set(name_keys(a)) & set(name_keys(b)))


@pytest.mark.parametrize(
    "variant",
    [
        "TROLL7049",  # capitals
        "Troll7049",
        "troII7049",  # two capital I for the l's
        "tro1l7049",  # a digit one for an l
        "troll7O49",  # a capital O for the zero
        "trolI7049",
        "ｔｒｏｌｌ７０４９",  # fullwidth forms (NFKC)
        "troll\u200b7049",  # zero-width space inside
        "tr\u200doll7049",  # zero-width joiner inside
        "troll\u20607049",  # word joiner inside
        "tro\u00adll7049",  # soft hyphen inside
        "troll7049\ufe0f",  # a variation selector
        "trоll7049",  # Cyrillic о
    ],
)
def test_every_spelling_of_a_blocked_name_is_the_same_person(variant):
    assert same_person("troll7049", variant)
    assert canonical_key(variant) == canonical_key("troll7049")


@pytest.mark.parametrize(
    "variant",
    [
        "Lucíа",  # the last letter a Cyrillic а
        "lucía",
        "LUCÍA",
        "Lucía",
        unicodedata.normalize("NFD", "Lucía"),  # NFD: i + combining acute
        "Lucı\u0301a",  # dotless i + combining acute
        "Lu\u200ccía",  # zero-width non-joiner inside
        "Ｌｕｃíａ",
    ],
)
def test_every_spelling_of_lucia_is_the_same_person(variant):
    assert same_person("Lucía", variant)


@pytest.mark.parametrize(
    ("a", "b"),
    [("ana", "аnа"), ("paypal", "pаypal"), ("ana maria", "ana  maria"), ("rnario", "mario"), ("ΑΝΑ", "ana")],
)
def test_other_scripts_and_look_alikes_are_the_same_person(a, b):
    assert same_person(a, b)


@pytest.mark.parametrize(("a", "b"), [("Lucia", "Lucía"), ("troll7049", "troll7050"), ("ana", "ano"), ("bill", "bili")])
def test_different_names_stay_different(a, b):
    assert not same_person(a, b)


def test_a_name_has_at_most_two_keys_and_its_look_key_first():
    assert name_keys("troll7049") == ("troll7o49",)
    assert name_keys("troII7049") == ("troll7o49", "troii7o49")
    assert canonical_key("TROLL7049") == canonical_key("troII7049") == "troll7o49"


def test_visible_drops_what_does_not_show():
    assert visible("  ana\u200b \u2060 maría\t") == "ana maría"
