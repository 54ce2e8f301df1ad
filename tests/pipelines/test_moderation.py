"""pipelines/moderation.py: which words are masked, how, and which listed terms they count as.

Every behaviour is checked in Spark (java.util.regex), not with Python's `re`:
each test batches its cases into one small DataFrame.
"""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from pipelines.moderation import (
    contains_profanity,
    masked_text,
    matched_terms,
    profanity_pattern,
    term_key,
    with_moderation,
    word_key,
)
from pipelines.wordlists import WordLists, load_word_lists

OUTPUT_SCHEMA = "id int, data string, masked_data string, terms array<string>, is_profane boolean"

ZWSP, ZWNJ, ZWJ, WORD_JOINER, BOM, SOFT_HYPHEN = "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"
ACUTE, TILDE = "\u0301", "\u0303"  # combining marks


@pytest.fixture(scope="module")
def word_lists() -> WordLists:
    return load_word_lists()


def clean(*texts: str) -> list[tuple]:
    """Cases that must come out untouched."""
    return [(text, text, []) for text in texts]


def stars(text: str) -> str:
    return "*" * len(text)


def moderated(spark, texts: list, word_lists: WordLists):
    input_df = spark.createDataFrame(list(enumerate(texts)), "id int, data string")
    return with_moderation(input_df, word_lists).orderBy("id")


def check(spark, word_lists: WordLists, cases: list[tuple]) -> None:
    """`cases`: (text, expected masked_data, expected terms); is_profane is expected iff terms."""
    actual = moderated(spark, [text for text, _, _ in cases], word_lists)
    expected = spark.createDataFrame(
        [(i, text, masked, terms, bool(terms)) for i, (text, masked, terms) in enumerate(cases)], OUTPUT_SCHEMA
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


# ---------------------------------------------------------------------------------------------
# word boundaries


BOUNDARY_CLEAN = [
    "computadora",
    "disputa",
    "reputación",
    "shiitake",
    "Scunthorpe",
    "assassin",
    "cocktail",
    "analista",
    "Dickens",
    "class",
    "passage",
    "imputado",
    "putativo",
    "culote",
    "hostiario",
    "cabronera",
    "as",
    "As",
    "AS",  # Spanish 'ace' / English 'as': ass needs its double s
    "mierda2",
    "2mierda",
    "fuck123",  # digits are word characters
    "ñmierda",
    "mierdaß",
    "Δshit",  # so are letters of any script
    f"x{ZWSP}mierda",  # an invisible character joins, it does not separate
    f"cafe{ACUTE}mierda",  # nor does a combining mark
]


def test_no_match_inside_a_word(spark, word_lists):
    check(
        spark,
        word_lists,
        clean(*BOUNDARY_CLEAN) + clean(" ".join(BOUNDARY_CLEAN), "the class assassin read Dickens in Scunthorpe"),
    )


def test_punctuation_emoji_and_edges_are_boundaries(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("mierda", "******", ["mierda"]),
            ("(mierda)", "(******)", ["mierda"]),
            ("¿joder?", "¿*****?", ["joder"]),
            ("«puta»", "«****»", ["puta"]),
            ("mierda.", "******.", ["mierda"]),
            ("#fuck", "#****", ["fuck"]),
            ("_ass_", "_***_", ["ass"]),
            ("😡mierda😡", "😡******😡", ["mierda"]),
            ("❤️puta", "❤️****", ["puta"]),  # after an emoji's variation selector (a mark)
            ("👍🏽joder", "👍🏽*****", ["joder"]),
            ("«cabrón»,joder", "«******»,*****", ["cabrón", "joder"]),
        ],
    )


# ---------------------------------------------------------------------------------------------
# case and accents


def test_case_and_accent_insensitive(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("JODER", "*****", ["joder"]),
            ("Mierda", "******", ["mierda"]),
            ("cabron", "******", ["cabrón"]),
            ("cabrón", "******", ["cabrón"]),
            ("CABRÓN", "******", ["cabrón"]),
            ("CaBrÓn", "******", ["cabrón"]),
            (f"cabro{ACUTE}n", "*******", ["cabrón"]),  # decomposed: o + U+0301 (7 characters)
            (f"CABRO{ACUTE}N", "*******", ["cabrón"]),
            ("jodete", "******", ["jódete"]),
            ("JÓDETE", "******", ["jódete"]),
            ("estupido", "********", ["estúpido"]),
            ("IMBECIL", "*******", ["imbécil"]),
            ("mïerda", "******", ["mierda"]),
            ("pùta", "****", ["puta"]),
            ("fück", "****", ["fuck"]),
            ("ShIt", "****", ["shit"]),
        ],
    )


def test_enye_stays_strict(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("coño", "****", ["coño"]),
            ("COÑO", "****", ["coño"]),
            (f"con{TILDE}o", "*****", ["coño"]),  # decomposed ñ: n + U+0303
            (f"CON{TILDE}O", "*****", ["coño"]),
            ("c0ñ0", "****", ["coño"]),
            ("cono", "cono", []),  # cone
            ("CONO", "CONO", []),
            ("conos", "conos", []),
            ("c0n0", "c0n0", []),
            (f"con{ACUTE}o", f"con{ACUTE}o", []),  # another mark on the n is not a tilde
        ],
    )


# ---------------------------------------------------------------------------------------------
# repeated letters


def test_repeated_letters(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("mierdaaaa", "*********", ["mierda"]),
            ("fuuuck", "******", ["fuck"]),
            ("puuuta", "******", ["puta"]),
            ("shiiiit", "*******", ["shit"]),
            ("JOOODER", "*******", ["joder"]),
            ("cabrooon", "********", ["cabrón"]),
            ("ffffuck", "*******", ["fuck"]),
            ("mmmierda", "********", ["mierda"]),
            ("gilipolllas", "***********", ["gilipollas"]),
            ("asssss", "******", ["ass"]),
            ("gilipolas", "gilipolas", []),  # a listed double letter stays required (as ≠ ass)
        ],
    )


# ---------------------------------------------------------------------------------------------
# stand-ins


def test_digit_and_symbol_stand_ins(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("m1erda", "******", ["mierda"]),
            ("h0stia", "******", ["hostia"]),
            ("sh1t", "****", ["shit"]),
            ("sh!t", "****", ["shit"]),
            ("pvta", "****", ["puta"]),
            ("a$$hole", "*******", ["asshole"]),
            ("f*ck", "****", ["fuck"]),
            ("sh*t", "****", ["shit"]),
            ("@sshole", "*******", ["asshole"]),
            ("m13rd4", "******", ["mierda"]),
            ("5hit", "****", ["shit"]),
            ("$hit", "****", ["shit"]),
            ("cul0", "****", ["culo"]),
            ("7its", "****", ["tits"]),
            ("p*ta", "****", ["puta"]),
            ("p*to", "****", ["puto"]),
            ("m**rda", "******", ["mierda"]),
            ("f**ck", "*****", ["fuck"]),
            ("*sshole", "*******", ["asshole"]),
            ("h*stias", "*******", ["hostias"]),
        ],
    )


def test_stand_in_symbols_alone_are_not_words(spark, word_lists):
    check(
        spark,
        word_lists,
        clean(
            "$$$$$$",
            "******",
            "@@@",
            "!!!",
            "1 + 1 = 2",
            "a*b",
            "**bold**",
            "5$",
            # numbers that read as listed words: no letter, no word
            "455",
            "4455",
            "4555",
            "7175",
            "room 455, floor 7175",
            "@$$",
            "4$$",
            "$455",
            "1-455",
            "455.",
            "455-abc",
        )
        + [("**mierda**", "**********", ["mierda"]), ("*mierda*", "********", ["mierda"])],
    )


# ---------------------------------------------------------------------------------------------
# invisible characters and separators


def test_invisible_characters_inside_a_word(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            (f"mi{ZWSP}erda", "*******", ["mierda"]),
            (f"f{SOFT_HYPHEN}uck", "*****", ["fuck"]),
            (f"jo{ZWNJ}der", "******", ["joder"]),
            (f"pu{ZWJ}ta", "*****", ["puta"]),
            (f"sh{WORD_JOINER}it", "*****", ["shit"]),
            (f"co{BOM}ño", "*****", ["coño"]),
            (f"mi{ZWSP}{ZWSP}erda", "********", ["mierda"]),
            ("sh\u2062it", "*****", ["shit"]),  # invisible times (Cf)
            ("c\u180eunt", "*****", ["cunt"]),  # Mongolian vowel separator (Cf)
            (f"fu{ZWSP}uu{ZWSP}ck", "********", ["fuck"]),
            (f"{ZWSP}mierda{ZWSP}", "********", ["mierda"]),  # glued to the word: part of it
            (f" {ZWSP}mierda{ZWSP}, {ZWSP}", " ********, \u200b", ["mierda"]),
        ],
    )


def test_one_separator_between_letters(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("m.i.e.r.d.a", "***********", ["mierda"]),
            ("mier-da", "*******", ["mierda"]),
            ("f_u_c_k", "*******", ["fuck"]),
            ("p.u.t.a", "*******", ["puta"]),
            ("s-h-i-t", "*******", ["shit"]),
            ("a.s.s.h.o.l.e", "*************", ["asshole"]),
            ("ass.hole", "********", ["asshole"]),
            ("mierda.", "******.", ["mierda"]),  # a separator after the word is not part of it
            ("m..ierda", "m..ierda", []),  # two separators in a row are not a gap
            ("m i e r d a", "m i e r d a", []),  # spaces between letters: not handled
            ("mierda-joder", "******-*****", ["mierda", "joder"]),
        ],
    )


# ---------------------------------------------------------------------------------------------
# plurals


def test_optional_plural(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("putas", "*****", ["putas"]),  # listed themselves
            ("cabrones", "********", ["cabrones"]),
            ("hostias", "*******", ["hostias"]),
            ("mierdas", "*******", ["mierda"]),  # s
            ("fucks", "*****", ["fuck"]),
            ("coños", "*****", ["coño"]),
            ("idiotas", "*******", ["idiota"]),
            ("asses", "*****", ["ass"]),  # es
            ("bitches", "*******", ["bitch"]),
            ("imbéciles", "*********", ["imbécil"]),
            ("maricones", "*********", ["maricón"]),
            ("putasss", "*******", ["putas"]),
            ("PUT4S", "*****", ["putas"]),
            ("mierdases", "mierdases", []),  # one plural only
        ],
    )


# ---------------------------------------------------------------------------------------------
# masking


def test_masking_keeps_everything_else(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            ("¡Qué mierda! 😡", "¡Qué ******! 😡", ["mierda"]),
            ("no, joder, no", "no, *****, no", ["joder"]),
            ("m1erda", "******", ["mierda"]),
            ("mierdaaaa", "*********", ["mierda"]),
            (f"mi{ZWSP}erda", "*******", ["mierda"]),
            ("hola\nmierda\nadiós", "hola\n******\nadiós", ["mierda"]),
            ("\tjoder\r\n", "\t*****\r\n", ["joder"]),
            ("joder!!! 🙄🙄", "*****!!! 🙄🙄", ["joder"]),
            ("puta mierda", "**** ******", ["puta", "mierda"]),
            ("joder mierda joder", "***** ****** *****", ["joder", "mierda"]),  # distinct, first occurrence first
            ("Mierda, MIERDA y m1erda", "******, ****** y ******", ["mierda"]),
            ("  fuck  ", "  ****  ", ["fuck"]),
            ("a disputa with a shit-ton of cocktails", "a disputa with a ****-ton of cocktails", ["shit"]),
        ],
    )


def test_null_empty_and_clean_texts(spark, word_lists):
    check(
        spark,
        word_lists,
        [
            (None, None, []),
            ("", "", []),
            (" ", " ", []),
            ("\n\t", "\n\t", []),
            ("😡🤬👍🏽", "😡🤬👍🏽", []),
            ("¿Qué tal? Todo bien 👋", "¿Qué tal? Todo bien 👋", []),
            ("你好，世界", "你好，世界", []),
            ("x\ufdd0y\ufdd1z mierda", "xyz ******", ["mierda"]),  # the internal marks are dropped
        ],
    )


def test_very_long_texts(spark, word_lists):
    filler = "la reunión del equipo es mañana a las diez, the meeting is at ten o'clock. "
    text = "mierda " + filler * 27
    text = text[:1000] + " joder " + text[1000:]
    text = text[:1990] + " f*ck"
    assert len(text) == 1995, len(text)
    expected = text.replace("mierda", "******").replace("joder", "*****").replace("f*ck", "****")
    check(
        spark,
        word_lists,
        [
            (text, expected, ["mierda", "joder", "fuck"]),
            (filler * 26, filler * 26, []),
            ("mierd" + "a" * 1995, "*" * 2000, ["mierda"]),
            ("$" * 2000, "$" * 2000, []),  # linear time: a word never starts inside a run
            ("*" * 2000, "*" * 2000, []),
            ("a$" * 1000, "a$" * 1000, []),
            (" ".join(["puta"] * 400), " ".join(["****"] * 400), ["puta"]),
            ("🙂 " * 600 + "puta" + " 🙂" * 390, "🙂 " * 600 + "****" + " 🙂" * 390, ["puta"]),
        ],
    )


# ---------------------------------------------------------------------------------------------
# allow-list


def test_allow_list_words_are_never_masked(spark, word_lists):
    check(
        spark,
        word_lists,
        clean(
            "craps", "Craps", "CRAPES", "assess", "annals", "annal", "anales", "putto", "Cullera", "a55", "Galaxy A55"
        )
        + [
            ("cr4ps", "*****", ["crap"]),  # only the word as allowed, not written otherwise
            ("craps and crap", "craps and ****", ["crap"]),
            ("asses assess", "***** assess", ["ass"]),
            ("assessed assesses assessment", "assessed assesses assessment", []),
        ],
    )


def test_allow_list_is_what_exempts_them(spark, word_lists):
    without_allow = WordLists(profane=word_lists.profane, allow=())
    check(
        spark,
        without_allow,
        [
            ("craps", "*****", ["crap"]),
            ("assess", "******", ["ass"]),
            ("annals", "******", ["anal"]),
            ("putto", "*****", ["puto"]),
            ("Cullera", "*******", ["culera"]),
            ("a55", "***", ["ass"]),
            ("anales", "******", ["anal"]),
            ("crapes", "******", ["crap"]),
        ],
    )
    only_cocks = WordLists(profane=("cock",), allow=("cocks",))
    check(spark, only_cocks, [("cock cocks", "**** cocks", ["cock"])])


# ---------------------------------------------------------------------------------------------
# the word lists, end to end


def test_every_listed_word_is_its_own_term(spark, word_lists):
    """Each listed word, as written, in upper case, with a letter repeated or an invisible
    character inside, is masked whole and reported as itself; with a plural or a `*` for a
    vowel it is masked whole and reported as exactly one listed word."""
    words = word_lists.profane
    variants = {
        "as is": lambda w: w,
        "upper": lambda w: w.upper(),
        "repeated": lambda w: w[0] * 3 + w[1:],
        "invisible": lambda w: w[0] + ZWSP + w[1:],
        "plural": lambda w: w + "s",
        "wildcard": lambda w: next((w[:i] + "*" + w[i + 1 :] for i, c in enumerate(w) if c in "aeiou"), w),
    }
    rows = [
        (kind, word, variants[kind](word))
        for kind in variants
        for word in words
        if variants[kind](word).lower() not in word_lists.allow
    ]  # crap + s = craps: allowed
    df = spark.createDataFrame(rows, "kind string, word string, data string").transform(
        lambda d: with_moderation(d, word_lists)
    )
    wrong = (
        df.where(
            ~F.col("is_profane")
            | (F.col("masked_data") != F.repeat(F.lit("*"), F.char_length("data")))
            | (F.size("terms") != 1)
            | (F.col("kind").isin("as is", "upper", "repeated", "invisible") & (F.get("terms", 0) != F.col("word")))
        )
        .select("kind", "data", "masked_data", "terms")
        .collect()
    )
    assert wrong == []


def test_python_and_spark_keys_agree(spark, word_lists):
    words = list(word_lists.profane)
    keys = spark.createDataFrame([(w,) for w in words], "word string").select(term_key(F.col("word")).alias("key"))
    assert [r.key for r in keys.collect()] == [word_key(w) for w in words]
    assert len({word_key(w) for w in words}) == len(words), "two listed words share a key"


def test_column_functions_and_another_text_column(spark, word_lists):
    df = spark.createDataFrame(
        [(1, "vaya mierda", "x"), (2, "hola", "y"), (3, None, "z")], "n int, body string, other string"
    )
    actual = df.select(
        "n",
        masked_text(F.col("body"), word_lists).alias("masked"),
        matched_terms(F.col("body"), word_lists).alias("terms"),
        contains_profanity(F.col("body"), word_lists).alias("profane"),
    ).orderBy("n")
    expected = spark.createDataFrame(
        [(1, "vaya ******", ["mierda"], True), (2, "hola", [], False), (3, None, [], False)],
        "n int, masked string, terms array<string>, profane boolean",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)

    out = with_moderation(df, word_lists, text_col="body")
    assert out.columns == ["n", "body", "other", "masked_data", "terms", "is_profane"]
    assert dict(out.dtypes) == {
        "n": "int",
        "body": "string",
        "other": "string",
        "masked_data": "string",
        "terms": "array<string>",
        "is_profane": "boolean",
    }


# ---------------------------------------------------------------------------------------------
# profanity_pattern (no Spark)


def test_profanity_pattern_rejects_what_it_cannot_match():
    with pytest.raises(ValueError, match="no profane word"):
        profanity_pattern([])
    with pytest.raises(ValueError, match="letters only"):
        profanity_pattern(["hijo de puta"])
    with pytest.raises(ValueError, match="letters or digits only"):
        profanity_pattern(["crap"], allow=["cr@ps"])
    assert profanity_pattern(("Mierda",)) == profanity_pattern(["mierda"])
