"""Author names at the edges of the name rules (config/contract.py AUTHOR_*), shared by the tests of the API's
check (api/validation.py `clean_author`) and the relay's (pipelines/validation.py): both must refuse exactly
the names marked refused here. Every name is as a check sees it: already stripped and in NFC, since the API
strips and normalises before it checks and sends only such names to Kafka.
"""

from __future__ import annotations

ACCEPTED = [
    "ana",
    "Zoë 🌍",
    "José María",
    "李小龙",
    "ana_b.c-d",
    "x" * 64,
    "😀" * 64,
    "a b",
    "محمد",  # right-to-left letters are letters, not direction controls
    "דוד",
    "👩\u200d💻",  # a joiner inside an emoji sequence
    "\u0915\u094d\u0937",  # Devanagari: a virama (Mn) between letters
    "x" + "\u0301" * 20,
    "O'Brien (ok)",
    "a\\b",
    "😀",
    "\u3164a",  # a filler with a letter: the letter shows
]

REFUSED = [
    "",
    "x" * 65,
    "😀" * 65,
    # control characters, line and paragraph separators, spaces other than U+0020
    "a\tb",
    "a\nb",
    "a\rb",
    "a\x00b",
    "a\x1cb",
    "a\x1fb",
    "a\x7fb",
    "a\x85b",
    "a\x9fb",
    "a\u00a0b",
    "a\u1680b",
    "a\u2007b",
    "a\u202fb",
    "a\u3000b",
    "a\u2028b",
    "a\u2029b",
    "ana\x00",
    # the slash of /users/<author>
    "a/b",
    "/",
    "ana/../x",
    "a\u202eb/c",
    # text-direction controls, anywhere
    "\u202eana",
    "ana\u202a",
    "a\u202bb",
    "a\u202cb",
    "a\u202db",
    "a\u2066b",
    "a\u2067b",
    "a\u2068b",
    "a\u2069b",
    # nothing visible: format characters, combining marks, spaces between them
    "\u200b",
    "\u200b\u200c\u200d",
    "\u0301",
    "\u00ad",
    "\ufeff",
    "\u180e",
    "\u034f",
    "\u2060",
    "\u200b \u200b",
    "\u0301\u0302 \u0303",
    "\U000e0041",  # a tag character (Cf)
    # blank letters: Hangul fillers and the braille blank draw nothing (issue 24.5)
    "\u3164",
    "\u3164\u3164",
    "\u2800",
    "\u115f\u1160",
    "\uffa0 \u2800",
    # zero-width and soft-hyphen characters inside a name make it look like another one (issue 24.5)
    "a\u00adb",
    "an\u200ba",
    "a\u200cb",
    "ana\u2060",
    "\ufeffana",
    "a\u180eb",
]
