r"""Profanity moderation as native Spark SQL: one Java regex over the word lists, masking and terms.

Built from Spark's built-in column functions only (no Python on the hot path),
so the relay can run it in real-time mode. `profanity_pattern` compiles the
listed words into one regex (a trie, tolerant of case, accents, repeats,
stand-ins, separators and invisible characters); `marked_matches` wraps each
match in two Unicode noncharacters; `masked_from_marked` and
`terms_from_marked` derive the masked text and the listed terms from that.
README "Moderation" says what is matched and why.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyspark.sql.functions as F
import pyspark.sql.types as T
from pyspark.sql import Column, DataFrame

from pipelines.wordlists import SEPARATORS, STAND_INS, WordLists, normalise_entry

OPEN_MARK = "\ufdd0"  # wraps each match in the marked text (Unicode noncharacters,
CLOSE_MARK = "\ufdd1"  # reserved for a program's internal use)
WILDCARD = "*"  # written for any vowel: f*ck, p*ta
MASK_CHAR = "*"


# Accented forms folded onto their base letter: the letters of Latin-1 (U+00C0-U+00FF) that are
# an ASCII letter with a diacritic, and ø. ñ is deliberately not an accented n: coño and cono are
# different words. Letters beyond Latin-1 (ā, š, ł...: neither Spanish nor English) are left out
# on purpose: java.util.regex keeps the characters below U+0100 of a class in one bit set and
# checks any other one by one, which would slow every position of every message down. Written
# decomposed (s + U+030C) they still match, through the combining marks a letter may carry.
def _latin_accents() -> dict[str, str]:
    accents: dict[str, str] = {}
    for code in range(0xC0, 0x100):
        ch = chr(code)
        decomposed = unicodedata.normalize("NFD", ch)
        if len(decomposed) > 1 and decomposed[0].isascii() and decomposed[0].isalpha() and ch not in "ñÑ":
            base = decomposed[0].lower()
            accents[base] = accents.get(base, "") + ch
    accents["o"] += "Øø"
    return accents


_ACCENTS: dict[str, str] = _latin_accents()
_VOWELS = frozenset("aeiou")


def _forms_and_bases(forms: dict[str, str]) -> tuple[str, str]:
    """Every form in a {base letter: its forms} table, and the base letter of each (for str.maketrans)."""
    return "".join(forms.values()), "".join(base * len(written) for base, written in forms.items())


_ACCENT_TABLE = str.maketrans(*_forms_and_bases(_ACCENTS))
_STAND_IN_TABLE = str.maketrans(*_forms_and_bases(STAND_INS))
# both at once, for Spark's translate
_FOLD_FROM, _FOLD_TO = (a + s for a, s in zip(_forms_and_bases(_ACCENTS), _forms_and_bases(STAND_INS)))
assert len(set(_FOLD_FROM)) == len(_FOLD_FROM) == len(_FOLD_TO)

# Java regex building blocks. No (?i) (each letter class lists its case forms: several times
# faster), few groups (a Matcher's set-up grows with them), no lookbehind at every position.
# Group 1: the character before a word (and its marks, e.g. an emoji's variation selector),
# consumed rather than looked behind at, so the text gets a leading space (`_PREFIX`). Group 2:
# the word, with the invisible characters glued to it on either side.
_BEFORE_WORD = r"([^\p{L}\p{N}\p{M}\p{Cf}]\p{M}*+)"
_WORD_END = r"(?![\p{M}\p{Cf}]*+[\p{L}\p{N}])"  # no letter or digit follows
# between two letters, after the marks and invisible characters that follow the first one:
# at most one separator, and invisible characters after it
_GAP = r"[._\-]?+\p{Cf}*+"
# a word of stand-ins only is a number or punctuation, not a word: `455`, `7175` and `@$$` stay
# clean (they read as ass and tits); stand-ins may come before the first letter
_HAS_A_LETTER = r"(?=[\p{Cf}\p{M}0-9!@$*]*+\p{L})"
_PREFIX = " "
# Letters in rough order of how often an English or Spanish word starts with them: the
# branches of the trie's root are tried in this order (a word pays for the ones before its own).
_COMMON_FIRST_LETTERS = "dteasclpmhonifbrwgvuyjkqzx"


# ---------------------------------------------------------------------------------------------
# The regex


def _letters(word: str) -> str:
    """A listed word as base letters: lower case, accents folded (ñ kept), marks/invisible chars dropped."""
    text = unicodedata.normalize("NFC", word).lower().replace("n\u0303", "ñ")
    text = "".join(
        ch
        for ch in text
        if unicodedata.category(ch)[0] != "M" and unicodedata.category(ch) != "Cf" and ch not in SEPARATORS
    )
    return text.translate(_ACCENT_TABLE)


def _collapse(text: str) -> str:
    return re.sub(r"(.)\1+", r"\1", text)


def word_key(word: str) -> str:
    """Python twin of `term_key` for a listed word (letters only): its key in the term map."""
    return _collapse(_letters(word).translate(_STAND_IN_TABLE))


def _with_case(chars: str) -> str:
    """`chars` and their one-character upper/lower case forms."""
    out: dict[str, None] = {}
    for ch in chars:
        for form in (ch, ch.lower(), ch.upper()):
            if len(form) == 1:
                out[form] = None
    return "".join(out)


def _class_chars(base: str) -> str:
    """Every character that may be written for the letter `base` (before its marks)."""
    wildcard = WILDCARD if base in _VOWELS else ""
    chars = _with_case(base + _ACCENTS.get(base, "") + STAND_INS.get(base, "")) + wildcard
    return "".join(c for c in chars if ord(c) < 0x100 or c == base)  # ÿ's upper case Ÿ is U+0178


def _class_set(base: str) -> frozenset[str]:
    chars = set(_class_chars(base))
    if base == "ñ":
        chars |= set("nN")  # ñ may be written n + U+0303
    return frozenset(chars)


def _java_char(ch: str) -> str:
    return ch if ch.isalnum() and ch.isprintable() else f"\\x{{{ord(ch):X}}}"


def _java_class_body(chars: Iterable[str]) -> str:
    """The inside of a Java character class for `chars`.

    java.util.regex keeps the single characters below U+0100 of a class in one bit set and
    checks everything else (ranges, properties, other characters) one predicate after the
    other; so characters below U+0100 are listed one by one, and the others as ranges."""
    codes = sorted({ord(c) for c in chars})
    parts = [_java_char(chr(code)) for code in codes if code < 0x100]
    high = [code for code in codes if code >= 0x100]
    for _, group in itertools.groupby(enumerate(high), key=lambda item: item[1] - item[0]):
        run = [code for _, code in group]
        if len(run) >= 3:
            parts.append(f"{_java_char(chr(run[0]))}-{_java_char(chr(run[-1]))}")
        else:
            parts.extend(_java_char(chr(code)) for code in run)
    return "".join(parts)


def _letter(base: str) -> str:
    """The character written for one letter: the base letter, an accented form or a stand-in."""
    if base == "ñ":
        return r"(?:[ñÑ]|[nN]\x{303})"
    return f"[{_java_class_body(_class_chars(base))}]"


def _inside(base: str) -> str:
    """What may follow a letter before the next one: marks and invisible characters (for n not U+0303)."""
    return r"[[\p{M}\p{Cf}]&&[^\x{303}]]*+" if base == "n" else r"[\p{M}\p{Cf}]*+"


def _more(base: str) -> str:
    """What may follow a letter that is repeated: the letter again, its marks, invisible characters."""
    if base == "ñ":
        return r"[ñÑ\p{M}\p{Cf}]"
    if base == "n":
        return f"[[{_java_class_body(_class_chars(base))}" + r"\p{M}\p{Cf}]&&[^\x{303}]]"
    return f"[{_java_class_body(_class_chars(base))}" + r"\p{M}\p{Cf}]"


def _symbols(base: str) -> str:
    """The characters of `base` that are neither letters nor digits (`@`, `$`, `*`...)."""
    return "".join(c for c in _class_chars(base) if unicodedata.category(c)[0] not in "LN")


def _run(base: str, count: int, possessive: bool, first: bool) -> str:
    """At least `count` of the letter `base` (gaps allowed between the first `count`), then repeats."""
    letter = _letter(base)
    symbols = _symbols(base)
    if first and symbols:
        # a word does not start inside a run of its stand-ins: `$$$$…` stays linear, not quadratic
        # (checked after the first character, so that other branches pay nothing for it)
        letter += f"(?<![{_java_class_body(symbols)}].)"
    return (_inside(base) + _GAP).join([letter] * count) + _more(base) + ("*+" if possessive else "*")


_PLURAL_E = _class_chars("e").replace(WILDCARD, "")
_PLURAL_S = _class_chars("s")
_PLURAL_SET = frozenset(_PLURAL_E + _PLURAL_S)
# an optional plural: s or es, the s possibly repeated
_PLURAL = (
    f"(?:{_GAP}[{_java_class_body(_PLURAL_E)}]?+[{_java_class_body(_PLURAL_S)}]"
    + f"[{_java_class_body(_PLURAL_S)}"
    + r"\p{M}\p{Cf}]*+)?"
)


@dataclass
class _Node:
    children: dict[tuple[str, int], _Node]
    terminal: bool = False


def _tokens(word: str) -> tuple[tuple[str, int], ...]:
    """A word as runs of one letter: mierda → (m,1) (i,1) ...; gilipollas → ... (l,2) (a,1) (s,1)."""
    return tuple((letter, len(list(group))) for letter, group in itertools.groupby(_letters(word)))


def _trie(words: Iterable[str]) -> _Node:
    root = _Node({})
    for word in words:
        node = root
        for token in _tokens(word):
            node = node.children.setdefault(token, _Node({}))
        node.terminal = True
    return root


def _group(alternatives: list[str]) -> str:
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


def _continuation(node: _Node) -> str:
    """What follows the letters of `node`: the next letter of a longer word (optional if a word ends here)."""
    if not node.children:
        return ""
    longer = _GAP + _branches(node, first=False)
    return f"(?:{longer})?" if node.terminal else longer


def _branch_order(item: tuple[tuple[str, int], _Node]) -> tuple:
    (base, count), _ = item
    rank = _COMMON_FIRST_LETTERS.find(base)
    return (rank if rank >= 0 else len(_COMMON_FIRST_LETTERS), base, -count)


def _branches(node: _Node, first: bool) -> str:
    # longer runs first: `ass.hole` is asshole rather than ass
    parts = []
    for (base, count), child in sorted(node.children.items(), key=_branch_order):
        follow = set().union(*(_class_set(b) for b, _ in child.children))
        if child.terminal:
            follow |= _PLURAL_SET
        # possessive repeats where what follows cannot start with the same characters
        possessive = not (_class_set(base) & follow)
        parts.append(_run(base, count, possessive, first) + _continuation(child))
    return _group(parts)


def _literal(word: str) -> str:
    """`word`, case-insensitive."""
    return "".join(f"[{_java_class_body(_with_case(c))}]" if len(_with_case(c)) > 1 else _java_char(c) for c in word)


def _check_words(words: Iterable[str], what: str, digits: bool = False) -> tuple[str, ...]:
    words = tuple(w for w in (normalise_entry(w) for w in words) if w)
    bad = [w for w in words if not (w.isalnum() if digits else w.isalpha())]
    if bad:
        raise ValueError(f"{what} must be words of letters{' or digits' if digits else ''} only: {bad}")
    return words


@functools.lru_cache(maxsize=16)
def _pattern(words: tuple[str, ...], allow: tuple[str, ...]) -> str:
    words = _check_words(words, "listed words")
    if not words:
        raise ValueError("no profane word to build a pattern from")
    allowed = sorted(set(_check_words(allow, "allowed words", digits=True)), key=lambda w: (-len(w), w))
    root = _trie(words)
    firsts = set().union(*(_class_set(base) for base, _ in root.children))
    allow_guard = f"(?!{_group([_literal(w) for w in allowed])}{_WORD_END})" if allowed else ""
    return (
        _BEFORE_WORD
        + f"(?=[{_java_class_body(firsts)}"
        + r"\p{Cf}])"  # a character that starts no word: next
        + _HAS_A_LETTER
        + r"(\p{Cf}*+"
        + allow_guard
        + _branches(root, first=True)
        + _PLURAL
        + ")"
        + _WORD_END
    )


def profanity_pattern(words: Sequence[str], allow: Sequence[str] = ()) -> str:
    """The Java regex (for Spark's regexp functions) matching every listed word, whole words only.

    `words` and `allow` are words of letters (any case); an allow-listed word,
    whole, in any case, is never matched. Group 2 is the word, group 1 the
    character before it: apply the pattern to the text prefixed with a space
    (as `marked_matches` does) so that a word at the very start has one.
    """
    return _pattern(tuple(words), tuple(allow))


# ---------------------------------------------------------------------------------------------
# Canonical terms


@functools.lru_cache(maxsize=16)
def _term_map(words: tuple[str, ...]) -> dict[str, str]:
    """{key: listed word} for every listed word and its plurals (s, es).

    A word's own key wins over a plural of another one; otherwise the first
    listed word wins (e.g. between cabron and cabrón)."""
    words = _check_words(words, "listed words")
    keys: dict[str, str] = {}
    for word in words:
        keys.setdefault(word_key(word), word)
    for word in words:
        for plural in ("s", "es"):
            keys.setdefault(_collapse(word_key(word) + plural), word)
    return keys


def _map_literal(mapping: dict[str, str]) -> Column:
    # keys and words are letters only, so one comma-joined literal per side; the optimizer
    # folds map_from_arrays(split(literal), split(literal)) into a single map literal
    return F.map_from_arrays(
        F.split(F.lit(",".join(mapping)), ",", -1), F.split(F.lit(",".join(mapping.values())), ",", -1)
    )


def term_key(text: Column) -> Column:
    """A matched substring (or a whole marked text) reduced to term keys: lower case, without
    combining marks, invisible characters and separators, accents and stand-ins folded,
    repeated letters collapsed."""
    key = F.lower(text)
    key = F.regexp_replace(key, "n\u0303", "ñ")
    key = F.regexp_replace(key, r"[\p{M}\p{Cf}._\-]", "")
    key = F.translate(key, _FOLD_FROM, _FOLD_TO)
    return F.regexp_replace(key, r"(.)\1+", "$1")


def term_for_key(key: Column, word_lists: WordLists) -> Column:
    """The listed word whose key (or one of its plurals' keys) is `key`; null if none.

    A key with `*` (written for a vowel) is looked for among the listed keys, each
    `*` standing for any vowels: one regexp_extract over the comma-joined keys."""
    mapping = _term_map(word_lists.profane)
    term_map = _map_literal(mapping)
    listed = F.lit("," + ",".join(mapping) + ",")
    vowels = "[" + "".join(sorted(_VOWELS)) + "]*"
    wildcard = F.concat(
        F.lit(",("), F.regexp_replace(F.regexp_replace(key, r"[^\p{L}*]", ""), r"\*", vowels), F.lit("),")
    )
    listed_key = F.call_function("regexp_extract", listed, wildcard, F.lit(1))
    return F.try_element_at(term_map, F.when(key.contains(WILDCARD), listed_key).otherwise(key))


# ---------------------------------------------------------------------------------------------
# Column functions on the text


def marked_matches(text: Column, pattern: str) -> Column:
    """`text` with each match of `pattern` wrapped in OPEN_MARK … CLOSE_MARK (marks already in it are removed)."""
    clean = F.when(
        text.contains(OPEN_MARK) | text.contains(CLOSE_MARK), F.regexp_replace(text, f"[{OPEN_MARK}{CLOSE_MARK}]", "")
    ).otherwise(text)
    prefixed = F.concat(F.lit(_PREFIX), clean)
    marked = F.regexp_replace(prefixed, pattern, f"$1{OPEN_MARK}$2{CLOSE_MARK}")
    # rlike first: most messages are clean, and rlike stops at the first match and skips what
    # regexp_replace costs on every row (it compares its long pattern with the previous row's)
    return F.when(prefixed.rlike(pattern), F.substring(marked, len(_PREFIX) + 1, 2**31 - 1)).otherwise(clean)


def masked_from_marked(marked: Column) -> Column:
    """The marked text with every match replaced by one MASK_CHAR per character, marks removed."""
    # each match is OPEN_MARK + its characters + CLOSE_MARK: the first replacement starts at
    # OPEN_MARK and takes one character, the next ones (\G) each take the next, up to CLOSE_MARK
    stars = F.regexp_replace(marked, f"(?:{OPEN_MARK}|(?!^)\\G)[^{CLOSE_MARK}]", MASK_CHAR)
    return F.when(marked.contains(OPEN_MARK), F.regexp_replace(stars, CLOSE_MARK, "")).otherwise(marked)


def matched_substrings(marked: Column) -> Column:
    """The matches in a marked text, as written, in order."""
    return F.regexp_extract_all(marked, F.lit(f"{OPEN_MARK}([^{CLOSE_MARK}]*){CLOSE_MARK}"), 1)


def matched_keys(marked: Column) -> Column:
    """The term keys of the matches in a marked text, in order (normalised all at once, joined)."""
    return F.split(term_key(F.array_join(matched_substrings(marked), CLOSE_MARK)), CLOSE_MARK, -1)


def terms_from_marked(marked: Column, word_lists: WordLists) -> Column:
    """The listed words matched in a marked text: distinct, in order of first occurrence (never null)."""
    terms = F.transform(matched_keys(marked), lambda key: term_for_key(key, word_lists))
    return F.when(marked.contains(OPEN_MARK), F.array_distinct(F.array_compact(terms))).otherwise(
        F.array().cast(T.ArrayType(T.StringType()))
    )


def profane_from_marked(marked: Column) -> Column:
    """Whether anything was matched (false for a null text)."""
    return F.coalesce(marked.contains(OPEN_MARK), F.lit(False))


def masked_text(text: Column, word_lists: WordLists) -> Column:
    """`text` with every profane word replaced by asterisks, one per character; null stays null."""
    return masked_from_marked(marked_matches(text, profanity_pattern(word_lists.profane, word_lists.allow)))


def matched_terms(text: Column, word_lists: WordLists) -> Column:
    """array<string> of the listed words found in `text` (canonical, distinct, first occurrence first)."""
    return terms_from_marked(marked_matches(text, profanity_pattern(word_lists.profane, word_lists.allow)), word_lists)


def contains_profanity(text: Column, word_lists: WordLists) -> Column:
    """Whether `text` holds a listed word (false for null)."""
    return profane_from_marked(marked_matches(text, profanity_pattern(word_lists.profane, word_lists.allow)))


# ---------------------------------------------------------------------------------------------
# DataFrame transformation

_MARKED_COL = "__moderation_marked"


def with_moderation(df: DataFrame, word_lists: WordLists, text_col: str = "data") -> DataFrame:
    """Add `masked_data` (string), `terms` (array<string>) and `is_profane` (boolean) for `text_col`.

    A null text gives a null `masked_data`, no terms and false; an empty one
    "", no terms and false. The regex runs once per row (twice for a row with
    a match): the marked text is an intermediate column that the three outputs
    are derived from. Stateless: fit for Spark's real-time mode.
    """
    pattern = profanity_pattern(word_lists.profane, word_lists.allow)
    marked = F.col(_MARKED_COL)
    return (
        df.withColumn(_MARKED_COL, marked_matches(F.col(text_col), pattern))
        .withColumns(
            {
                "masked_data": masked_from_marked(marked),
                "terms": terms_from_marked(marked, word_lists),
                "is_profane": profane_from_marked(marked),
            }
        )
        .drop(_MARKED_COL)
    )
