"""A name's identity however it is spelled: its keys (Unicode TS #39 skeletons, from ICU's confusables data).

Two names are one person's when they share a key. A name has two keys because case and look-alikes do not
compose into one equivalence: `I` looks like `l` while its lower case is `i`, and `Í` looks like `ĺ` while its
lower case is `í`. The *look key* takes the skeleton before case-folding (`troII7049` ~ `troll7049`), the *case
key* folds case first (`LUCÍA` ~ `Lucía`); a name's keys meet another's when they are the same person.
"""

from __future__ import annotations

import re
import threading
import unicodedata

import icu

_IGNORABLE = icu.UnicodeSet("[:Default_Ignorable_Code_Point:]")
_IGNORABLE.freeze()
_NFKC_CASEFOLD = icu.Normalizer2.getNFKCCasefoldInstance()
_SPACES = re.compile(r"\s+")
_LOCAL = threading.local()  # a SpoofChecker is not to be shared between threads


def _checker() -> icu.SpoofChecker:
    checker = getattr(_LOCAL, "checker", None)
    if checker is None:
        checker = _LOCAL.checker = icu.SpoofChecker()
    return checker


def visible(name: str) -> str:
    """NFKC, without default-ignorable (zero-width, joiner, variation selector...) characters, runs of
    white space as one space, stripped."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if not _IGNORABLE.contains(ch))
    return _SPACES.sub(" ", text).strip()


def _fold(text: str) -> str:
    """Skeleton then NFKC_Casefold, until nothing changes (a skeleton may bring capitals back: `0` → `O`)."""
    checker = _checker()
    for _ in range(4):
        folded = _NFKC_CASEFOLD.normalize(checker.getSkeleton(0, text))
        if folded == text:
            break
        text = folded
    return text


def look_key(name: str) -> str:
    """The skeleton taken before case-folding: `TROLL7049`, `troII7049` and `troll7049` share it."""
    return _fold(visible(name))


def case_key(name: str) -> str:
    """The skeleton of the case-folded name: `LUCÍA`, `lucía` and `Lucíа` (Cyrillic а) share it."""
    return _fold(_NFKC_CASEFOLD.normalize(visible(name)))


def name_keys(name: str) -> tuple[str, ...]:
    """The name's keys (one or two): another name is a look-alike when it has one of them."""
    look, case = look_key(name), case_key(name)
    return (look,) if look == case else (look, case)


canonical_key = look_key  # the key the brief names: case-insensitive, look-alikes folded
