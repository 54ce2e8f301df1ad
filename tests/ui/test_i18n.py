"""ui/i18n.py: the catalog (both languages, the same parameters, plurals) and choosing a person's language."""

from __future__ import annotations

import re

import pytest
from htmltools import tags

from ui.i18n import (
    CATALOG,
    DEFAULT_LANGUAGE,
    LANGUAGES,
    Plural,
    Terms,
    Text,
    choose,
    coerce,
    negotiate,
    parameters,
    text,
)


@pytest.mark.parametrize("text_id", sorted(CATALOG))
def test_every_text_exists_in_both_languages_with_the_same_parameters(text_id: str) -> None:
    entry = CATALOG[text_id]
    assert set(entry) == set(LANGUAGES)
    assert parameters(entry["es"]) == parameters(entry["en"])
    for lang in LANGUAGES:
        form = entry[lang]
        forms = (form.one, form.other) if isinstance(form, Plural) else (form,)
        assert all(f.strip() and f == f.strip() for f in forms), "no empty text, no stray spaces"
        if isinstance(form, Plural):
            # the count is a parameter of the text, and both forms say the number
            assert form.count in parameters(form)
            assert all(f"{{{form.count}}}" in f for f in forms)
            assert form.one != form.other
    # a plural in one language is a plural on the same parameter in the other
    plural = [entry[lang].count if isinstance(entry[lang], Plural) else None for lang in LANGUAGES]  # type: ignore[union-attr]
    assert plural[0] == plural[1] or None in plural


@pytest.mark.parametrize("text_id", sorted(CATALOG))
def test_every_text_renders_in_both_languages(text_id: str) -> None:
    names = parameters(CATALOG[text_id]["en"])
    for count in (1, 2, 3):
        rendered = {lang: text(text_id, **dict.fromkeys(names, count)).render(lang) for lang in LANGUAGES}
        assert all("{" not in r and "}" not in r for r in rendered.values()), rendered
    if CATALOG[text_id]["es"] != CATALOG[text_id]["en"] and names != {"text"}:
        assert rendered["es"] != rendered["en"]  # translated, not copied


def test_plural_forms_follow_the_number() -> None:
    assert text("intro.limit", limit=1).render("en") == (
        "At 1 strike you are blocked: you can neither send nor read messages."
    )
    assert text("intro.limit", limit=3).render("en") == (
        "At 3 strikes you are blocked: you can neither send nor read messages."
    )
    assert (
        text("intro.limit", limit=1).render("es") == "Con 1 falta se te bloquea: ya no puedes enviar ni leer mensajes."
    )
    assert text("intro.limit", limit=3).render("es") == (
        "Con 3 faltas se te bloquea: ya no puedes enviar ni leer mensajes."
    )
    assert text("intro.limit", limit=0).render("en").startswith("At 0 strikes")
    assert "tras 2 faltas" in text("blocked.reason", strikes=2).render("es")
    assert "after 1 strike for" in text("blocked.reason", strikes=1).render("en")


def test_texts_nest_and_quote_terms_per_language() -> None:
    refused = text("send.refused", reason=text("blocked.reason", strikes=3))
    assert refused.render("en") == (
        "Message not sent: You are blocked after 3 strikes for profanity: you can neither send nor read messages. "
        "A moderator can unblock you."
    )
    assert refused.render("es").startswith("Mensaje no enviado: Se te ha bloqueado tras 3 faltas")
    assert Terms(("mierda", "shit")).render("es") == "«mierda», «shit»"
    assert Terms(("mierda", "shit")).render("en") == "“mierda”, “shit”"
    assert Terms(()).render("en") == ""


def test_tag_parameters_keep_each_languages_word_order() -> None:
    name = tags.strong("zoë")
    assert [str(c) for c in text("join.chatting_as", name=name).children("en")] == [
        "Chatting as ",
        "<strong>zoë</strong>",
        ".",
    ]
    assert [str(c) for c in text("join.chatting_as", name=name).children("es")] == [
        "Estás en el chat como ",
        "<strong>zoë</strong>",
        ".",
    ]


def test_unknown_ids_and_missing_parameters_fail_loudly() -> None:
    with pytest.raises(KeyError):
        text("no.such.text")
    with pytest.raises(KeyError):
        text("join.chatting_as").render("en")
    assert Text("app.title") == text("app.title")  # values: equal texts compare equal


def test_no_text_is_built_from_fragments() -> None:
    """Every catalog text is a whole sentence or label: none starts or ends mid-sentence with a space or a
    dangling joiner that another fragment would complete."""
    for entry in CATALOG.values():
        for form in entry.values():
            for template in (form.one, form.other) if isinstance(form, Plural) else (form,):
                assert not re.search(r"(\s|\b(and|or|y|o|of|de|for|por))$", template)


# -- the person's language -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("es-AR,es;q=0.9,en;q=0.8", "es"),
        ("en-US", "en"),
        ("es", "es"),
        ("ES-mx", "es"),
        ("en-GB,en;q=0.9,es;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,es;q=0.8,en;q=0.7", "es"),  # the first of ours the browser accepts
        ("fr-FR,fr;q=0.9,en;q=0.8,es;q=0.7", "en"),
        ("en;q=0.5,es;q=0.9", "es"),  # by quality, not by position
        ("es;q=0,en", "en"),  # q=0: not acceptable
        ("de-DE", "en"),
        ("*", "en"),
        ("", "en"),
        (None, "en"),
        ("garbage", "en"),
        ("es;q=abc,en-US", "en"),
        (";;;,,,=", "en"),
        ("es-419", "es"),
    ],
)
def test_negotiate_accept_language(header: str | None, lang: str) -> None:
    assert negotiate(header) == lang


def test_choose_prefers_the_remembered_choice() -> None:
    assert choose({"accept-language": "en-US"}, {"chat_lang": "es"}) == "es"
    assert choose({"accept-language": "es-ES"}, {"chat_lang": "en"}) == "en"
    assert choose({"accept-language": "es-ES"}, {"chat_lang": "fr"}) == "es"  # not ours: the browser decides
    assert choose({}, {}) == DEFAULT_LANGUAGE == "en"


def test_coerce() -> None:
    assert coerce("es") == "es" and coerce("en") == "en"
    assert coerce("fr") == coerce(None) == coerce(["es"]) == "en"
