#!/usr/bin/env python3
"""Check the moderation word lists (conf/wordlists/*.tsv) against ordinary-language dictionaries.

Standard library only; run it after every change to es.tsv, en.tsv or allow.tsv:

    apt-get install -y wspanish wamerican        # /usr/share/dict/{spanish,american-english}
    python3 conf/wordlists/tools/check_wordlists.py            # summary; exit 1 on a problem
    python3 conf/wordlists/tools/check_wordlists.py --verbose  # every dictionary hit, every root's words
    python3 conf/wordlists/tools/check_wordlists.py --coverage # LDNOOBW coverage (sources/ldnoobw-*.txt)
    # optional, every inflected Spanish form (conjugations, enclitics: 1.3 million words):
    apt-get install -y hunspell-es hunspell-tools
    unmunch /usr/share/hunspell/es_ES.dic /usr/share/hunspell/es_ES.aff > /tmp/es_forms.txt
    python3 conf/wordlists/tools/check_wordlists.py --extra /tmp/es_forms.txt

What it checks
1. Format: four TAB-separated fields (entry, category, flags, source) and an optional
   `# comment`; a known category and flags; lower case and NFC; an `ambiguous` entry
   says its innocent sense in its comment; no two entries (in any list) fold alike.
2. (a) Equality: a dictionary word that the matcher would take for an entry (the entry
   itself or its plural s/es, after folding) must be resolved: the entry is `ambiguous`,
   the word is allow-listed, or the word's dictionary sense is the profane one (listed in
   tools/profane_senses.txt).
3. (b) Roots: every dictionary word that CONTAINS a `root` entry must be resolved the
   same way (profane sense, or allow-listed); otherwise the `root` flag is unsafe.
4. The allow-list: each allowed word does trigger the entry it names (else it is useless).
5. eval/profane.tsv and eval/clean.tsv: each line has three fields and names listed entries
   (only ambiguous ones in clean.tsv). Whether an engine meets them is the engine's tests' job.

The matcher's folding is approximated: NFC, lower case, combining accents dropped except
the tilde of ñ, `.`/`-`/`_`/apostrophe dropped, `v` read as `u` (the matcher takes `v` as
a stand-in for `u`; applied to both sides, so this over-reports, never under-reports),
repeated letters collapsed. Stand-ins other than v (digits, @, $) do not occur in
dictionary words. Dictionary possessives (`word's`) are read as `word`, and an inner
apostrophe is dropped (Shi'ite is read as shiite, as chat writes it).

tools/extra_words.txt adds words the dictionaries lack: names of people and places, brands,
spellings and inflections seen in chat (Yamashita, Scunthorpe, Shiite, computadora...).
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTS = HERE.parent
CATEGORIES = ("discrimination", "sexual", "insult", "profanity")
DICTIONARIES = {
    "spanish": Path("/usr/share/dict/spanish"),
    "american-english": Path("/usr/share/dict/american-english"),
}


def letters(text: str) -> str:
    """NFC, lower case, accents dropped except the tilde of ñ, separators and apostrophes dropped."""
    s = unicodedata.normalize("NFD", unicodedata.normalize("NFC", text.strip()).lower().replace("\u2019", "'"))
    out: list[str] = []
    for ch in s:
        if unicodedata.category(ch) in ("Mn", "Cf"):
            if ch == "\u0303" and out and out[-1] == "n":
                out[-1] = "ñ"
            continue
        out.append(ch)
    return re.sub(r"\s+", " ", re.sub(r"[._\-']", "", "".join(out)))


def fold(text: str) -> str:
    """The key of a word or phrase: letters() with repeated letters collapsed (as the term map does)."""
    return re.sub(r"(.)\1+", r"\1", letters(text))


# the matcher's stand-ins (pipelines/moderation.py), for the allow-list check only
STAND_INS = str.maketrans("@4310!5$7", "aaeiiosst")

Runs = tuple[tuple[str, int], ...]


def runs(text: str) -> Runs:
    """A word as runs of one letter: mierda -> (m,1)(i,1)...; gilipollas -> ...(l,2)(a,1)(s,1)."""
    return tuple((ch, len(list(group))) for ch, group in itertools.groupby(letters(text)))


def _same(entry_letter: str, word_letter: str) -> bool:
    # the matcher reads v for u (pvta); an entry's v is only v
    return entry_letter == word_letter or (entry_letter == "u" and word_letter == "v")


def _aligned(entry: Runs, word: Runs) -> bool:
    """Same letters run by run, and each of the word's runs at least as long as the entry's (repeats are free)."""
    return len(entry) == len(word) and all(_same(a, b) and m >= n for (a, n), (b, m) in zip(entry, word))


def matches_whole(entry: str, word: str) -> bool:
    """Would the matcher take the whole `word` for `entry` (itself, or its plural s / es)?

    The plural's e is one letter (no repeats), unless it continues the entry's own final e."""
    w = runs(word)
    if _aligned(runs(entry), w) or _aligned(runs(entry + "s"), w):
        return True
    plural = runs(entry + "es")
    if not _aligned(plural, w):
        return False
    return letters(entry).endswith("e") or w[-2][1] == 1


def contains(entry: str, word: str) -> bool:
    """Does `word` contain `entry` (a root) somewhere, runs aligned as above?"""
    e, w = runs(entry), runs(word)
    for i in range(len(w) - len(e) + 1):
        window = w[i : i + len(e)]
        if all(_same(a, b) and m >= n for (a, n), (b, m) in zip(e, window)):
            return True
    return False


@dataclass
class Entry:
    entry: str
    category: str
    flags: tuple[str, ...]
    source: str
    comment: str
    file: str
    line: int

    @property
    def key(self) -> str:
        return fold(self.entry)

    @property
    def ambiguous(self) -> bool:
        return "ambiguous" in self.flags

    @property
    def root(self) -> bool:
        return "root" in self.flags


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def split_comment(line: str) -> tuple[str, str]:
    body, _, comment = line.partition("#")
    return body.rstrip(), comment.strip()


def read_lists(report: Report) -> list[Entry]:
    entries: list[Entry] = []
    for path in sorted(LISTS.glob("*.tsv")):
        if path.name == "allow.tsv":
            continue
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            body, comment = split_comment(raw)
            fields = body.split("\t")
            where = f"{path.name}:{number}"
            if len(fields) != 4:
                report.errors.append(f"{where}: expected 4 TAB-separated fields, got {len(fields)}: {raw!r}")
                continue
            entry, category, flags, source = (f.strip() for f in fields)
            flagset = () if flags == "-" else tuple(flags.split(","))
            if entry != unicodedata.normalize("NFC", entry).lower() or "  " in entry:
                report.errors.append(f"{where}: {entry!r} is not lower case NFC with single spaces")
            if category not in CATEGORIES:
                report.errors.append(f"{where}: unknown category {category!r}")
            for flag in flagset:
                if flag not in ("ambiguous", "root") and not re.fullmatch(r"region:[a-z]{2}", flag):
                    report.errors.append(f"{where}: unknown flag {flag!r}")
            if "ambiguous" in flagset and not comment:
                report.errors.append(f"{where}: {entry!r} is ambiguous but its comment gives no innocent sense")
            if "root" in flagset and " " in entry:
                report.errors.append(f"{where}: a phrase cannot be a root: {entry!r}")
            if not source:
                report.errors.append(f"{where}: no source")
            entries.append(Entry(entry, category, flagset, source, comment, path.name, number))
    seen: dict[str, Entry] = {}
    for e in entries:
        if e.key in seen:
            o = seen[e.key]
            report.errors.append(f"{e.file}:{e.line}: {e.entry!r} folds like {o.file}:{o.line} {o.entry!r}")
        seen[e.key] = e
    for e in entries:  # a listed word that another one already matches (as its plural) is redundant
        for o in entries:
            if o is not e and " " not in e.entry and " " not in o.entry and matches_whole(e.entry, o.entry):
                report.notes.append(f"{o.file}:{o.line} {o.entry!r} is already matched by {e.entry!r}")
    return entries


def read_allow(report: Report) -> dict[str, tuple[str, str]]:
    """{allowed word: (entry it would trigger, reason)}"""
    allow: dict[str, tuple[str, str]] = {}
    path = LISTS / "allow.tsv"
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        body, comment = split_comment(raw)
        fields = [f.strip() for f in body.split("\t")]
        if len(fields) != 2 or not fields[0] or not fields[1]:
            report.errors.append(f"allow.tsv:{number}: expected word<TAB>entry: {raw!r}")
            continue
        allow[unicodedata.normalize("NFC", fields[0]).lower()] = (fields[1], comment)
    return allow


class Senses(dict):
    """{dictionary word or glob pattern (encabron*): entry}; `word in senses` also tries the patterns."""

    def __contains__(self, word: object) -> bool:
        return dict.__contains__(self, word) or any(
            fnmatch.fnmatchcase(str(word), p) for p in self if any(c in p for c in "*?[")
        )


def read_profane_senses() -> Senses:
    """{dictionary word: entry}: dictionary words whose dictionary sense is the profane one."""
    senses = Senses()
    for raw in (HERE / "profane_senses.txt").read_text(encoding="utf-8").splitlines():
        body, _ = split_comment(raw)
        if body.strip():
            word, _, entry = body.partition("\t")
            senses[unicodedata.normalize("NFC", word.strip()).lower()] = entry.strip()
    return senses


def read_words(path: Path) -> set[str]:
    """One word a line, lower case NFC; a possessive 's is dropped; `#` comments allowed."""
    items = set()
    for w in path.read_text(encoding="utf-8").splitlines():
        w = unicodedata.normalize("NFC", w.split("#", 1)[0].strip()).lower()
        if w.endswith("'s"):
            w = w[:-2]
        if re.search(r"('re|'ve|'ll|'d|'m|n't)$", w):
            continue  # a contraction: the matcher splits it at the apostrophe (who're is not whore)
        if w:
            items.add(w.replace("'", ""))  # another inner apostrophe is dropped: shi'ite is read as shiite
    return items


def read_dictionaries(extra: list[Path]) -> dict[str, set[str]]:
    """{word list name: words}: the Debian dictionaries, tools/extra_words.txt, and any --extra list."""
    words: dict[str, set[str]] = {}
    for name, path in DICTIONARIES.items():
        if not path.is_file():
            sys.exit(f"{path} is missing: apt-get install -y wspanish wamerican")
        words[name] = read_words(path)
    words["extra_words.txt"] = read_words(HERE / "extra_words.txt")
    for path in extra:
        words[path.name] = read_words(path)
    return words


def _ukey(text: str) -> str:
    return fold(text).replace("v", "u")


def dictionary_check(entries, allow, senses, dictionaries, report, verbose):
    index: dict[str, list[tuple[str, str]]] = defaultdict(list)  # prefilter: folded word, v as u
    total = 0
    for name, words in dictionaries.items():
        total += len(words)
        for w in words:
            index[_ukey(w)].append((w, name))
    print(f"dictionary words checked: {total} (" + ", ".join(f"{n} {len(w)}" for n, w in dictionaries.items()) + ")")
    singles = [e for e in entries if " " not in e.entry]

    def listed(word: str, but: Entry) -> bool:
        return any(o is not but and matches_whole(o.entry, word) for o in singles)

    outcome: Counter[str] = Counter()
    root_outcome: Counter[str] = Counter()
    hit_entries: set[str] = set()
    for e in singles:
        candidates = {c for suffix in ("", "s", "es") for c in index.get(_ukey(e.entry + suffix), ())}
        for w, dic in sorted(candidates):
            if not matches_whole(e.entry, w):
                continue
            if w in allow:
                verdict = "allow-listed"
            elif w in senses:
                verdict = "profane sense"
            elif e.entry in senses and letters(w) in (letters(e.entry) + "s", letters(e.entry) + "es"):
                verdict = "profane sense"  # the plural of a word reviewed as profane
            elif e.ambiguous:
                verdict = "entry marked ambiguous"
            else:
                verdict = "UNRESOLVED"
            outcome[verdict] += 1
            hit_entries.add(e.entry)
            line = f"(a) {e.entry!r} = {dic}:{w!r} -> {verdict}"
            if verdict == "UNRESOLVED":
                report.errors.append(line)
            elif verbose:
                print("  " + line)
        if e.root:
            key = _ukey(e.entry)
            inside = sorted(
                {
                    (w, dic)
                    for k, items in index.items()
                    if key in k
                    for w, dic in items
                    if contains(e.entry, w) and not matches_whole(e.entry, w)
                }
            )
            verdicts = []
            for w, dic in inside:
                if w in allow:
                    v = "allow-listed"
                elif w in senses:
                    v = "profane sense"
                elif listed(w, e):
                    v = "a listed entry"
                else:
                    v = "UNRESOLVED"
                verdicts.append((w, dic, v))
                root_outcome[v] += 1
            bad = [f"{dic}:{w}" for w, dic, v in verdicts if v == "UNRESOLVED"]
            print(
                f"  (b) root {e.entry!r}: {len(inside)} dictionary words contain it"
                + (": " + ", ".join(f"{w} [{v}]" for w, _, v in verdicts) if verbose or bad else "")
            )
            if bad:
                report.errors.append(f"root {e.entry!r} is unsafe: contained in {', '.join(bad)}")
    print(
        f"(a) dictionary words equal to an entry or its plural: {sum(outcome.values())}, on "
        f"{len(hit_entries)} entries: " + ", ".join(f"{v} {n}" for v, n in sorted(outcome.items()))
    )
    print(
        f"(b) dictionary words containing a root: {sum(root_outcome.values())}: "
        + ", ".join(f"{v} {n}" for v, n in sorted(root_outcome.items()))
    )


def allow_check(entries, allow, report):
    by_entry = {e.entry: e for e in entries}
    for word, (entry, _) in allow.items():
        e = by_entry.get(entry)
        if e is None:
            report.errors.append(f"allow.tsv: {word!r} names {entry!r}, which is in no list")
            continue
        word = word.translate(STAND_INS)  # a55 is ass written with stand-ins
        if not matches_whole(e.entry, word) and not (e.root and contains(e.entry, word)):
            report.errors.append(f"allow.tsv: {word!r} would not trigger {entry!r}: the entry is useless")


def coverage(entries, report):
    """How many LDNOOBW entries the lists cover, and how (the first way that applies, in this order)."""
    dropped: dict[tuple[str, str], str] = {}
    for raw in (HERE / "ldnoobw_dropped.tsv").read_text(encoding="utf-8").splitlines():
        body, _ = split_comment(raw)
        if body.strip():
            lang, entry, reason = body.split("\t")
            dropped[(lang, unicodedata.normalize("NFC", entry).lower())] = reason
    kinds = (
        "listed",
        "derived (case/accent)",
        "derived (plural/repeats)",
        "root",
        "contains a listed entry",
        "dropped",
        "MISSING",
    )
    used_drops = set()
    for lang in ("es", "en"):
        src = LISTS / "sources" / f"ldnoobw-{lang}.txt"
        rows = [r.strip() for r in src.read_text(encoding="utf-8").splitlines() if r.strip()]
        how: Counter[str] = Counter()
        cats: dict[str, Counter[str]] = defaultdict(Counter)
        reasons: Counter[str] = Counter()
        for raw in rows:
            low = unicodedata.normalize("NFC", raw).lower()
            tokens = low.split()
            kind, e = None, None
            for cand in entries:
                if cand.entry == low:
                    kind, e = "listed", cand
                    break
            if kind is None:
                for cand in entries:
                    if letters(cand.entry) == letters(low):
                        kind, e = "derived (case/accent)", cand
                        break
            if kind is None:
                for cand in entries:
                    if matches_whole(cand.entry, low):
                        kind, e = "derived (plural/repeats)", cand
                        break
            if kind is None:
                for cand in entries:
                    if cand.root and any(contains(cand.entry, t) for t in tokens):
                        kind, e = "root", cand
                        break
            if kind is None:
                windows = [" ".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)]
                for cand in sorted(entries, key=lambda x: -len(x.entry)):
                    if any(matches_whole(cand.entry, w) for w in windows):
                        kind, e = "contains a listed entry", cand
                        break
            if kind is None and (lang, low) in dropped:
                used_drops.add((lang, low))
                reasons[dropped[(lang, low)]] += 1
                how["dropped"] += 1
                continue
            if kind is None:
                how["MISSING"] += 1
                report.errors.append(f"LDNOOBW {lang} {raw!r}: neither covered nor dropped")
                continue
            if (lang, low) in dropped:
                report.notes.append(f"LDNOOBW {lang} {raw!r} is dropped but matched ({kind}: {e.entry!r})")
            how[kind] += 1
            cats[kind][e.category] += 1
        covered = sum(how[k] for k in kinds[:5])
        print(
            f"LDNOOBW {lang}: {len(rows)} entries: matched {covered}, dropped {how['dropped']}, "
            f"missing {how['MISSING']}"
        )
        for kind in kinds:
            if how[kind]:
                detail = ", ".join(f"{c} {n}" for c, n in sorted(cats[kind].items()))
                if kind == "dropped":
                    detail = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
                print(f"  {kind}: {how[kind]}" + (f" ({detail})" if detail else ""))
        total = Counter()
        for kind in kinds[:5]:
            total.update(cats[kind])
        print("  matched, by category: " + ", ".join(f"{c} {total[c]}" for c in CATEGORIES))
    for key in set(dropped) - used_drops:
        report.notes.append(f"ldnoobw_dropped.tsv: {key} is not needed")


def eval_check(entries, report):
    """eval/profane.tsv and eval/clean.tsv: three fields; every named entry is listed; clean names only ambiguous ones."""
    by_entry = {e.entry: e for e in entries}
    for name in ("profane.tsv", "clean.tsv"):
        path = LISTS / "eval" / name
        count = 0
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not raw.strip() or raw.startswith("#"):
                continue
            fields = raw.split("\t")
            where = f"eval/{name}:{number}"
            if len(fields) != 3:
                report.errors.append(f"{where}: expected text<TAB>entries<TAB>note")
                continue
            count += 1
            named = [] if fields[1] == "-" else fields[1].split(",")
            if name == "profane.tsv" and not named:
                report.errors.append(f"{where}: a profane line names no entry")
            for entry in named:
                e = by_entry.get(entry)
                if e is None:
                    report.errors.append(f"{where}: {entry!r} is in no list")
                elif name == "clean.tsv" and not e.ambiguous:
                    report.errors.append(f"{where}: {entry!r} is not ambiguous, so the line is not clean")
        print(f"eval/{name}: {count} lines")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every hit")
    parser.add_argument("--coverage", action="store_true", help="also report LDNOOBW coverage")
    parser.add_argument(
        "--extra",
        type=Path,
        action="append",
        default=[],
        help="another word list to check, one word a line (e.g. a hunspell expansion)",
    )
    args = parser.parse_args()
    report = Report()
    entries = read_lists(report)
    allow = read_allow(report)
    senses = read_profane_senses()
    counts = Counter((e.file, e.category) for e in entries)
    for f in sorted({e.file for e in entries}):
        n = sum(v for (ff, _), v in counts.items() if ff == f)
        print(
            f"{f}: {n} entries: "
            + ", ".join(f"{c} {counts[(f, c)]}" for c in CATEGORIES)
            + f"; ambiguous {sum(1 for e in entries if e.file == f and e.ambiguous)}"
            + f", root {sum(1 for e in entries if e.file == f and e.root)}"
        )
    print(f"allow.tsv: {len(allow)} words")
    dictionary_check(entries, allow, senses, read_dictionaries(args.extra), report, args.verbose)
    allow_check(entries, allow, report)
    eval_check(entries, report)
    for word, entry in senses.items():
        if entry not in {e.entry for e in entries}:
            report.errors.append(f"profane_senses.txt: {word!r} names {entry!r}, which is in no list")
    if args.coverage:
        coverage(entries, report)
    for note in report.notes:
        print("note:", note)
    for error in report.errors:
        print("ERROR:", error)
    print("OK" if not report.errors else f"{len(report.errors)} problem(s)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
