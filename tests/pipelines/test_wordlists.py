"""pipelines/wordlists.py: the shipped word lists, reading list files, and its independence from Spark."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import pytest

from config.settings import REPO_ROOT
from pipelines.wordlists import WordLists, load_word_lists, normalise_entry, read_word_file


@pytest.fixture(scope="module")
def word_lists() -> WordLists:
    return load_word_lists()


REQUIRED_WORDS = [
    "mierda",
    "joder",
    "cabrón",
    "hostia",
    "puta",
    "puto",
    "coño",
    "gilipollas",
    "pendejo",
    "culo",
    "verga",
    "fuck",
    "shit",
    "cunt",
    "bitch",
    "asshole",
    "bastard",
    "dick",
    "cock",
    "crap",
]


def write(folder, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_shipped_word_lists(word_lists):
    assert set(REQUIRED_WORDS) <= set(word_lists.profane)
    assert len(word_lists.profane) >= 100
    assert {"craps", "assess", "anales"} <= set(word_lists.allow)
    assert not set(word_lists.allow) & set(word_lists.profane)
    assert all(w == unicodedata.normalize("NFC", w).lower() for w in word_lists.profane + word_lists.allow)


def test_load_word_lists_reads_comments_case_and_every_list(tmp_path):
    write(tmp_path, "es.txt", "# Spanish\n\nMierda\n  joder  # inline comment\nmierda\nco\u0301ño\n")
    write(tmp_path, "en.txt", "fuck\nshit\n")
    write(tmp_path, "allow.txt", "# nothing yet\n")
    assert load_word_lists(tmp_path) == WordLists(profane=("fuck", "shit", "mierda", "joder", "cóño"), allow=())


def test_load_word_lists_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_word_lists(tmp_path / "missing")

    only_allow = tmp_path / "only_allow"
    write(only_allow, "allow.txt", "craps\n")
    with pytest.raises(FileNotFoundError, match="no profanity list"):
        load_word_lists(only_allow)

    no_allow = tmp_path / "no_allow"
    write(no_allow, "es.txt", "mierda\n")
    with pytest.raises(FileNotFoundError, match="allow-list"):
        load_word_lists(no_allow)

    empty = tmp_path / "empty"
    write(empty, "es.txt", "# only a comment\n\n")
    write(empty, "allow.txt", "")
    with pytest.raises(ValueError, match="holds no word"):
        load_word_lists(empty)

    two_words = tmp_path / "two_words"
    write(two_words, "es.txt", "mierda\nhijo de puta\n")
    write(two_words, "allow.txt", "")
    with pytest.raises(ValueError, match=r"es\.txt:2: 'hijo de puta' is not a single word"):
        load_word_lists(two_words)

    digits = tmp_path / "digits"
    write(digits, "en.txt", "sh1t\n")
    write(digits, "allow.txt", "a55\n")
    with pytest.raises(ValueError, match="sh1t"):
        load_word_lists(digits)

    latin1 = tmp_path / "latin1"
    latin1.mkdir()
    (latin1 / "es.txt").write_bytes("cabrón\n".encode("latin-1"))
    write(latin1, "allow.txt", "")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_word_lists(latin1)


def test_read_word_file_allows_digits_only_when_asked(tmp_path):
    write(tmp_path, "allow.txt", "A55  # ass, with stand-ins\nCraps\n\n#\n")
    assert read_word_file(tmp_path / "allow.txt", digits=True) == ("a55", "craps")
    with pytest.raises(
        ValueError, match=r"allow\.txt:1: 'A55  # ass, with stand-ins' is not a single word of letters$"
    ):
        read_word_file(tmp_path / "allow.txt")


def test_entries_are_nfc_lower_case_and_stripped():
    assert normalise_entry("  CABRO\u0301N\t") == "cabrón"
    assert normalise_entry("Ñandú") == "ñandú"


def test_reading_the_lists_does_not_load_spark():
    code = "import sys, pipelines.wordlists as w; w.load_word_lists(); print('pyspark' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
