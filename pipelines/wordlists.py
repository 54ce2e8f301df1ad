"""The word lists of conf/wordlists and the ways of writing a word that the moderation sees through.

Plain Python (no Spark), so that the demo-data generator can read the lists
without loading PySpark. README "Moderation" describes the files.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from config import settings

WORDLIST_DIR = settings.REPO_ROOT / "conf" / "wordlists"
ALLOW_FILE = "allow.txt"

# Characters written in place of a letter to get past a filter.
STAND_INS: dict[str, str] = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "u": "v"}
# One of these may stand between two letters of a word: m.i.e.r.d.a, mier-da.
SEPARATORS = ".-_"


@dataclass(frozen=True)
class WordLists:
    """The listed profane words and the allow-list, lower case, as written in the files."""

    profane: tuple[str, ...]
    allow: tuple[str, ...] = ()


def normalise_entry(raw: str) -> str:
    """A word as the lists hold it: stripped, NFC, lower case."""
    return unicodedata.normalize("NFC", raw.strip()).lower()


def read_word_file(path: Path, digits: bool = False) -> tuple[str, ...]:
    """The words of one list file: one a line, `#` comments and blank lines ignored, duplicates dropped.

    A word is letters only (letters and digits with `digits`, for the allow-list: a55)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8: {e}") from None
    words: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        word = normalise_entry(line.split("#", 1)[0])
        if not word:
            continue
        if not (word.isalnum() if digits else word.isalpha()):
            kind = "letters or digits" if digits else "letters"
            raise ValueError(f"{path}:{number}: {line.strip()!r} is not a single word of {kind}")
        words[word] = None
    return tuple(words)


def load_word_lists(directory: Path = WORDLIST_DIR) -> WordLists:
    """Read the word lists: every `*.txt` but allow.txt is profane (in name order), allow.txt is the allow-list.

    Raises FileNotFoundError when the folder, allow.txt or any profane list is
    missing, and ValueError when a profane list holds no word (an allow-list
    may be empty) or a line is not one word.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"word-list folder {directory} does not exist")
    lists = sorted(p for p in directory.glob("*.txt") if p.name != ALLOW_FILE)
    if not lists:
        raise FileNotFoundError(f"no profanity list (*.txt other than {ALLOW_FILE}) in {directory}")
    allow_path = directory / ALLOW_FILE
    if not allow_path.is_file():
        raise FileNotFoundError(f"allow-list {allow_path} does not exist (it may hold only comments)")
    profane: dict[str, None] = {}
    for path in lists:
        words = read_word_file(path)
        if not words:
            raise ValueError(f"profanity list {path} holds no word")
        profane.update(dict.fromkeys(words))
    return WordLists(profane=tuple(profane), allow=read_word_file(allow_path, digits=True))
