"""config/contract.py: the notice texts in every language the chat speaks."""

from __future__ import annotations

import string

from config import contract


def parameters(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_words_every_kind_of_notice_with_the_same_parameters():
    assert set(contract.NOTICE_TEXTS_BY_LANGUAGE) == set(contract.LANGUAGES)
    assert contract.DEFAULT_LANGUAGE in contract.LANGUAGES
    assert contract.NOTICE_TEXTS_BY_LANGUAGE[contract.DEFAULT_LANGUAGE] is contract.NOTICE_TEXTS  # the ledger's
    for kind in contract.NOTICE_KINDS:
        worded = {lang: texts[kind] for lang, texts in contract.NOTICE_TEXTS_BY_LANGUAGE.items()}
        assert all(parameters(t) == parameters(worded["en"]) for t in worded.values()), kind
        assert len(set(worded.values())) == len(worded), f"{kind} is not translated"


def test_a_notice_in_spanish_and_in_english():
    assert contract.notice_text("warning", 2, 3, ["mierda", "joder"], "es") == (
        "Aviso: falta 2 de 3 por mierda, joder. Tu mensaje se ha tapado. Con 3 faltas se te bloquea."
    )
    assert contract.notice_text("warning", 2, 3, ["mierda", "joder"]) == (
        "Warning: strike 2 of 3 for mierda, joder. Your message was masked. At 3 strikes you are blocked."
    )
    assert contract.notice_text("blocked", 3, 3, ["coño"], "es") == (
        "Se te ha bloqueado: falta 3 de 3 por coño. Ya no puedes enviar ni leer mensajes."
    )


def test_the_rule_a_name_breaks_names_its_words():
    assert contract.author_problem_rule("ana") is None and contract.author_problem("ana") is None
    for name, rule in (("a\nb", "control"), ("a/b", "forbidden"), ("\u200b", "invisible"), ("a\u202eb", "invisible")):
        assert contract.author_problem_rule(name) == rule
        assert contract.author_problem(name, "user") == contract.AUTHOR_PROBLEMS[rule].format(field="user")
