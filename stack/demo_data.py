"""`make demo-data N=…`: send realistic chat traffic straight to the Kafka topic `chat` of a running stack.

    python -m stack.demo_data [-n 5000] [--users U] [--days 7] [--profane-share 0.06]
                              [--malformed-share 0.01] [--seed S] [--bootstrap HOST:PORT]

Straight to Kafka, not through the API, so that malformed records (which the
API refuses) reach the ledger's `rejected_messages` too. `generate` builds the
records, a pure function of its arguments (the same seed gives the same users
and texts; timestamps and message ids also depend on `now`); `send` delivers
them with an idempotent producer and checks every acknowledgement. Kafka's
record timestamps stay the time of sending, so retention does not drop the
back-dated traffic. README "Statistics, report and SQL" describes the traffic.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import re
import sys
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from config import contract, settings
from config.cluster_security import kafka_client_kwargs
from pipelines.wordlists import SEPARATORS, STAND_INS, WORDLIST_DIR, load_word_lists, read_word_file

PROG = "demo-data"
CLEAN = "clean"
PROFANE = "profane"
# The malformed kinds, each with the start of the reason pipelines/validation.py gives for it.
MALFORMED_KINDS: dict[str, str] = {
    "not_json": "value is not JSON",
    "invalid_utf8": "value is not JSON",
    "json_array": "value is not a JSON object",
    "missing_field": "missing field",
    "wrong_type": "field data must be a string",
    "extra_field": "unexpected fields",
    "empty_data": "data is empty",
    "blank_author": "author is empty",
    "too_long_data": f"data longer than {contract.MAX_DATA_CHARS} characters",
    "bad_timestamp": "timestamp is not YYYY-MM-DD HH:MM:SS",
}

DEFAULT_N = 5000
DEFAULT_DAYS = 7.0
DEFAULT_PROFANE_SHARE = 0.06
DEFAULT_MALFORMED_SHARE = 0.01
MAX_N = 500_000  # the records are built in memory before the first is sent
MAX_USERS = 300
MAX_DAYS = 365.0

# ---------------------------------------------------------------------------------------------
# Vocabularies. Clean texts must stay clean for the tolerant matcher too: no listed word, no
# `*`, no word a stand-in could turn into one (idiota, boludo, damn and crap are listed).

FIRST_NAMES = (
    "Ana",
    "María",
    "José",
    "Lucía",
    "Javier",
    "Sofía",
    "Mateo",
    "Valentina",
    "Begoña",
    "Iñaki",
    "Nuria",
    "Ángel",
    "Raúl",
    "Inés",
    "Álvaro",
    "Marta",
    "Pablo",
    "Carmen",
    "Diego",
    "Elena",
    "Jorge",
    "Noé",
    "Camila",
    "Tomás",
    "Ximena",
    "Joaquín",
    "Maite",
    "Rocío",
    "Sebastián",
    "Martín",
    "Guillermo",
    "Itziar",
    "Zoë",
    "Chloé",
    "Renée",
    "Émile",
    "François",
    "Søren",
    "Björn",
    "Jürgen",
    "Łukasz",
    "Olga",
    "Anaïs",
    "Liam",
    "Emma",
    "Olivia",
    "Noah",
    "Ava",
    "Ethan",
    "Grace",
    "Oliver",
    "Amelia",
    "Jack",
    "Mia",
    "Harry",
    "Priya",
    "Aarav",
    "Kwame",
    "Aisha",
    "Mei",
    "Hiro",
    "Yuki",
    "Siobhán",
    "Seán",
    "Chidi",
    "Leilani",
)
SURNAMES = (
    "García",
    "Martínez",
    "López",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Fernández",
    "Núñez",
    "Muñoz",
    "Ibáñez",
    "Castaño",
    "Peña",
    "Ortiz",
    "Rivera",
    "Smith",
    "Johnson",
    "O'Brien",
    "Williams",
    "Brown",
    "Taylor",
    "Müller",
    "Dubois",
    "Rossi",
    "Nakamura",
    "Kowalski",
    "Silva",
    "Okafor",
    "Nguyen",
    "Patel",
    "Jensen",
)
OTHER_NAMES = (
    "田中花子",
    "山田 太郎",
    "李伟",
    "王芳",
    "张伟",
    "陳美玲",
    "さくら",
    "ゆうき",
    "김민준",
    "이서연",
    "Алёна",
    "Дмитрий",
    "Νίκος",
    "Ελένη",
    "Nguyễn Văn An",
    "Đặng Thu",
)
HANDLE_WORDS = (
    "gamer",
    "dev",
    "luna",
    "sol",
    "pixel",
    "byte",
    "neko",
    "lobo",
    "gato",
    "taco",
    "coffee",
    "ninja",
    "rider",
    "panda",
    "star",
    "river",
    "tech",
    "music",
    "chef",
    "nube",
    "rayo",
    "mango",
    "otter",
    "comet",
)
NAME_EMOJI = ("🌮", "🐱", "🌙", "⚽", "🎸", "🦊", "🚀", "🌻", "☕", "🐼", "🌈", "🎧")
EMOJI = (
    "😂",
    "👍",
    "🎉",
    "🔥",
    "❤️",
    "🙌",
    "😅",
    "🤔",
    "☕",
    "⚽",
    "🎸",
    "😎",
    "🙏",
    "👀",
    "💯",
    "🥳",
    "😍",
    "🤣",
    "👋",
    "✨",
    "🍕",
    "🌧️",
    "😴",
    "🤷",
)
ANGRY_EMOJI = ("😤", "😡", "🤬", "🙄", "💢")

VOCAB: dict[str, dict[str, tuple[str, ...]]] = {
    "es": {
        "greeting": (
            "hola",
            "buenas",
            "¡hola a todos!",
            "buenos días",
            "buenas tardes",
            "buenas noches",
            "¿qué tal?",
            "¿qué pasa, gente?",
            "hola hola",
            "holi",
            "¡buenas, chicos!",
            "hola, ¿cómo va todo?",
            "¡muy buenas!",
        ),
        "question": (
            "¿alguien vio {topic}?",
            "¿qué os pareció {topic}?",
            "¿a qué hora es {topic}?",
            "¿alguien sabe si {topic} sigue en pie?",
            "¿quién se apunta {when}?",
            "¿dónde veis {topic}?",
            "¿alguien tiene el enlace de {topic}?",
            "¿me recomendáis algo para {activity}?",
            "¿qué tal {topic}?",
            "¿vamos {when}?",
        ),
        "opinion": (
            "{topic} estuvo {adj}",
            "me encantó {topic}",
            "la verdad, {topic} me pareció {adj}",
            "no me convence {topic}",
            "{topic} es lo mejor de la semana",
            "para mí {topic} fue {adj}",
            "pues a mí {topic} me gustó bastante",
            "no entiendo tanto bombo con {topic}, lo digo y me voy",
        ),
        "reaction": (
            "jajaja",
            "jaja sí",
            "totalmente",
            "ni idea",
            "qué bueno",
            "me apunto",
            "vale",
            "ok",
            "+1",
            "claro que sí",
            "uff",
            "qué envidia",
            "ánimo",
            "¡gracias!",
            "de nada",
            "tal cual",
            "eso digo yo",
            "buenísimo",
            "no me lo creo",
            "qué pasada",
            "sí, sí",
        ),
        "plan": (
            "voy a {place} {when}",
            "hoy toca {activity}",
            "estoy {doing}",
            "mañana tengo {event}",
            "{when} me paso por {place}",
            "acabo de volver de {place}",
            "me voy a {place}, luego os leo",
        ),
        "mention": (
            "@{name} {reaction}",
            "@{name} ¿vienes {when}?",
            "@{name} ¿viste {topic}?",
            "@{name} te lo paso luego",
            "gracias @{name}",
        ),
        "topic": (
            "el partido",
            "la serie",
            "el examen",
            "el concierto",
            "la película",
            "el nuevo disco",
            "la reunión",
            "el proyecto",
            "el tráfico",
            "la lluvia",
            "el café de la esquina",
            "la final",
            "el curso de Python",
            "el viaje a Valencia",
            "la receta de paella",
            "el último capítulo",
            "la exposición",
            "el festival",
            "la cena del viernes",
            "el torneo de pádel",
        ),
        "adj": (
            "genial",
            "increíble",
            "un rollo",
            "una pasada",
            "regular",
            "espectacular",
            "mejor de lo que esperaba",
            "de diez",
            "emocionante",
            "lo más",
        ),
        "when": (
            "mañana",
            "esta tarde",
            "el sábado",
            "luego",
            "a las 8",
            "el finde",
            "esta noche",
            "el lunes",
            "después de comer",
        ),
        "place": (
            "la playa",
            "el gimnasio",
            "casa de mi abuela",
            "la oficina",
            "el centro",
            "la biblioteca",
            "Sevilla",
            "la montaña",
            "el mercado",
        ),
        "activity": ("correr", "estudiar", "cocinar", "ver series", "leer", "entrenar", "programar"),
        "doing": (
            "estudiando",
            "en el tren",
            "cocinando",
            "trabajando",
            "viendo el partido",
            "de vacaciones",
            "esperando el autobús",
            "en una reunión eterna",
        ),
        "event": ("médico", "un examen", "una entrevista", "clase de guitarra", "partido", "una boda"),
        "profane": (
            "qué {w}",
            "{w}, otra vez sin wifi",
            "vaya {w} de partido",
            "eres un {w}",
            "menudo {w} estás hecho",
            "esto es una {w}",
            "{w}!!",
            "¿en serio? {w}",
            "@{name} {w}",
            "{w} {w2}, ya está bien",
            "qué {w} de día {angry}",
            "otra vez tarde, {w}",
            "{w}, se me ha caído el café",
            "no aguanto más esta {w}",
        ),
    },
    "en": {
        "greeting": (
            "hi",
            "hello everyone",
            "hey!",
            "good morning",
            "good evening",
            "hey folks",
            "what's up?",
            "hi all 👋",
            "morning!",
            "hey, how's it going?",
            "yo",
        ),
        "question": (
            "did anyone watch {topic}?",
            "what did you think of {topic}?",
            "what time is {topic}?",
            "is {topic} still on?",
            "who's up for it {when}?",
            "where are you watching {topic}?",
            "anyone got the link for {topic}?",
            "any tips for {activity}?",
            "how was {topic}?",
            "shall we go {when}?",
        ),
        "opinion": (
            "{topic} was {adj}",
            "loved {topic}",
            "honestly, {topic} was {adj}",
            "not convinced by {topic}",
            "{topic} is the best thing this week",
            "for me {topic} was {adj}",
            "I quite liked {topic} actually",
            "{topic} is overrated, fight me",
        ),
        "reaction": (
            "lol",
            "haha yes",
            "totally",
            "no idea",
            "nice",
            "count me in",
            "ok",
            "sure",
            "+1",
            "agreed",
            "oof",
            "so jealous",
            "good luck!",
            "thanks!",
            "np",
            "same",
            "true",
            "that's great",
            "no way",
            "wow",
        ),
        "plan": (
            "heading to {place} {when}",
            "{activity} today",
            "I'm {doing}",
            "I've got {event} tomorrow",
            "I'll drop by {place} {when}",
            "just got back from {place}",
            "off to {place}, talk later",
        ),
        "mention": (
            "@{name} {reaction}",
            "@{name} are you coming {when}?",
            "@{name} did you see {topic}?",
            "@{name} I'll send it later",
            "thanks @{name}",
        ),
        "topic": (
            "the match",
            "the new season",
            "the exam",
            "the concert",
            "the movie",
            "the new album",
            "the meeting",
            "the project",
            "the traffic",
            "the rain",
            "the coffee place downtown",
            "the final",
            "the Python course",
            "the trip to Lisbon",
            "the pasta recipe",
            "the last episode",
            "the exhibition",
            "the festival",
            "Friday's dinner",
            "the chess tournament",
        ),
        "adj": (
            "great",
            "amazing",
            "a bit weak",
            "brilliant",
            "boring",
            "okay",
            "spectacular",
            "better than expected",
            "weird",
            "exciting",
        ),
        "when": (
            "tomorrow",
            "this afternoon",
            "on Saturday",
            "later",
            "at 8",
            "this weekend",
            "tonight",
            "on Monday",
            "after lunch",
        ),
        "place": (
            "the beach",
            "the gym",
            "my grandma's",
            "the office",
            "town",
            "the library",
            "Leeds",
            "the mountains",
            "the market",
        ),
        "activity": ("running", "studying", "cooking", "reading", "training", "coding", "gardening"),
        "doing": (
            "studying",
            "on the train",
            "cooking",
            "working",
            "watching the match",
            "on holiday",
            "waiting for the bus",
            "in an endless meeting",
        ),
        "event": ("a doctor's appointment", "an exam", "an interview", "a guitar lesson", "a match", "a wedding"),
        "profane": (
            "what the {w}",
            "this is {w}",
            "{w}, the build broke again",
            "you {w}",
            "{w}!!",
            "oh {w}",
            "total {w} {angry}",
            "@{name} {w}",
            "{w} {w2}, I'm done",
            "late again, {w}",
            "{w}, I spilled my coffee",
            "can't stand this {w} anymore",
            "seriously? {w}",
        ),
    },
}
SENTENCE_KINDS = ("question", "opinion", "plan")

# A daily rhythm in UTC: relative traffic at each hour (interpolated in between).
HOURLY_ACTIVITY = (
    0.35,
    0.22,
    0.13,
    0.08,
    0.07,
    0.09,
    0.18,
    0.35,
    0.55,
    0.7,
    0.78,
    0.84,
    0.9,
    0.9,
    0.85,
    0.85,
    0.9,
    0.97,
    1.0,
    1.0,
    1.0,
    0.95,
    0.8,
    0.58,
)

# ---------------------------------------------------------------------------------------------
# Obfuscations the matcher of pipelines/moderation.py tolerates (README "Moderation"); the stand-ins
# and separators are its own (pipelines/wordlists.py).

ACCENTED = {"a": "áàâä", "e": "éèêë", "i": "íìîï", "o": "óòôö", "u": "úùûü"}
INVISIBLE = ("\u200b", "\u200c", "\u2060")  # zero-width space, zero-width non-joiner, word joiner


def _stand_in(word: str, rng: random.Random) -> str:
    spots = [i for i, ch in enumerate(word) if ch in STAND_INS]
    if not spots:
        return word
    chars = list(word)
    for i in rng.sample(spots, min(len(spots), rng.choice((1, 1, 2)))):
        chars[i] = rng.choice(STAND_INS[chars[i]])
    return "".join(chars)


def _accent(word: str, rng: random.Random) -> str:
    spots = [i for i, ch in enumerate(word) if ch in ACCENTED]
    if not spots:
        return word
    i = rng.choice(spots)
    return word[:i] + rng.choice(ACCENTED[word[i]]) + word[i + 1 :]


def _wildcard(word: str, rng: random.Random) -> str:
    spots = [i for i, ch in enumerate(word) if ch in "aeiou"]
    if not spots:
        return word
    i = rng.choice(spots)
    return word[:i] + "*" + word[i + 1 :]


def _repeat(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    return word[:i] + word[i] * rng.randint(3, 5) + word[i + 1 :]


def _invisible(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word)) if len(word) > 1 else 1  # after a character, never before the word
    return word[:i] + rng.choice(INVISIBLE) + word[i:]


def _separator(word: str, rng: random.Random) -> str:
    # between two different letters only: the matcher takes no gap inside a run (the ll of polla)
    gaps = [i for i in range(1, len(word)) if word[i - 1] != word[i]]
    if not gaps:
        return word
    sep = rng.choice(SEPARATORS)
    chosen = set(gaps) if rng.random() < 0.5 else {rng.choice(gaps)}
    return "".join((sep if i in chosen else "") + ch for i, ch in enumerate(word))


# In the order they are applied. A separator goes on a plain word only (it may come between two
# letters but not inside a run: after a stand-in or a repeat, `s$` or `sss` would be one);
# the others combine with each other, upper case last.
_OBFUSCATE: dict[str, Callable[[str, random.Random], str]] = {
    "stand_in": _stand_in,
    "accent": _accent,
    "wildcard": _wildcard,
    "repeat": _repeat,
    "invisible": _invisible,
    "separator": _separator,
    "upper": lambda word, rng: word.upper(),
}
OBFUSCATIONS = tuple(_OBFUSCATE)
COMBINABLE = ("stand_in", "accent", "wildcard", "repeat", "invisible")


def obfuscated(word: str, hows: Sequence[str], rng: random.Random, allow: Sequence[str] = ()) -> str:
    """`word` (a listed word, lower case) written with the obfuscations `hows` (OBFUSCATIONS; a
    separator only with upper case); the plain word if that would be an allow-listed word
    (`ass` written `a55`: the allow-list wins over a match)."""
    if "separator" in hows and set(hows) - {"separator", "upper"}:
        raise ValueError(f"a separator combines with upper case only, not with {sorted(hows)}")
    written = word
    for how in OBFUSCATIONS:
        if how in hows:
            written = _OBFUSCATE[how](written, rng)
    return word if written.casefold() in {w.casefold() for w in allow} else written


def random_obfuscations(rng: random.Random) -> tuple[str, ...]:
    """One to three obfuscations that `obfuscated` accepts together."""
    hows = ("separator",) if rng.random() < 0.15 else tuple(rng.sample(COMBINABLE, rng.choice((1, 1, 1, 2))))
    return hows + ("upper",) if rng.random() < 0.25 else hows


# ---------------------------------------------------------------------------------------------
# The records


@dataclass(frozen=True)
class ProfaneWords:
    """The words to swear with, per language, and the allow-list they must not be written as."""

    by_language: dict[str, tuple[str, ...]]
    allow: tuple[str, ...] = ()


def load_profane_words(directory: Path | None = None) -> ProfaneWords:
    """The listed words of conf/wordlists: es.txt for Spanish, en.txt for English; a language
    without its own file swears with every listed word. Allow-listed words are left out."""
    directory = Path(directory or WORDLIST_DIR)
    lists = load_word_lists(directory)
    allowed = set(lists.allow)
    by_language = {}
    for language in VOCAB:
        path = directory / f"{language}.txt"
        words = read_word_file(path) if path.is_file() else lists.profane
        by_language[language] = tuple(w for w in words if w not in allowed) or lists.profane
    return ProfaneWords(by_language, lists.allow)


@dataclass(frozen=True)
class User:
    name: str
    weight: float  # activity: share of the messages, relative to the others
    propensity: float  # how likely a message of theirs is profane, relative to the others
    spanish: float  # probability that a message of theirs is in Spanish
    single: bool = False  # sends exactly one message


@dataclass(frozen=True)
class DemoRecord:
    """One Kafka record for `chat`, with what the generator meant it to be."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    label: str  # "clean", "profane" or a malformed kind (MALFORMED_KINDS)
    author: str | None  # the user it comes from (None for garbage that names nobody)
    sent_at: datetime  # its place in the traffic (UTC); malformed records may not carry it

    @property
    def message_id(self) -> str:
        return dict(self.headers)[contract.MESSAGE_ID_HEADER].decode("ascii")

    @property
    def is_valid(self) -> bool:
        return self.label in (CLEAN, PROFANE)


def _name(rng: random.Random) -> str:
    first, surname = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
    word = rng.choice(HANDLE_WORDS)
    patterns = (
        (14, lambda: first),
        (18, lambda: f"{first} {surname}"),
        (5, lambda: f"{first} {rng.choice(FIRST_NAMES)}"),
        (10, lambda: f"{first.lower()}{rng.randint(1, 99):02d}"),
        (7, lambda: f"{first.lower()}_{surname.lower()}"),
        (9, lambda: f"{word}_{rng.choice(HANDLE_WORDS)}"),
        (7, lambda: f"{first} {rng.choice(NAME_EMOJI)}"),
        (4, lambda: f"{rng.choice(NAME_EMOJI)} {word}"),
        (12, lambda: rng.choice(OTHER_NAMES)),
        (3, lambda: f"xX_{word}_Xx"),
        (4, lambda: f"{first}.{surname}"),
        (4, lambda: f"{word}{rng.randint(1, 9999)}"),
        (3, lambda: f"{rng.choice(('el', 'la', 'the'))} {word} {rng.choice(NAME_EMOJI)}"),
    )
    make = rng.choices([p for _, p in patterns], weights=[w for w, _ in patterns])[0]
    return unicodedata.normalize("NFC", make()).strip()[: contract.MAX_AUTHOR_CHARS]


def make_users(rng: random.Random, count: int) -> list[User]:
    """`count` users with distinct names (case-insensitively), activity and propensity.

    Activity is log-normal (a few very chatty users, a long tail); about one
    user in twenty sends a single message; about 6% are trolls (at least one
    among 3 or more users), busier than three users in four, whose propensity
    is some hundred times an occasional swearer's (three users in ten of the
    others); the rest never swear.
    """
    names: dict[str, str] = {}
    while len(names) < count:
        for _ in range(20):
            name = _name(rng)
            if name.casefold() not in names:
                break
        else:
            name = f"{name}{rng.randint(2, 999)}"[: contract.MAX_AUTHOR_CHARS]
        names.setdefault(name.casefold(), name)
    trolls = max(1 if count >= 3 else 0, round(count * 0.06))
    singles = max(1, count // 20) if count >= 10 else 0
    roles = ["troll"] * trolls + ["single"] * singles + ["regular"] * (count - trolls - singles)
    rng.shuffle(roles)
    weights = [rng.lognormvariate(0.0, 1.1) for _ in range(count)]
    busy = sorted(weights)[count * 3 // 4]
    users = []
    for name, role, weight in zip(names.values(), roles, weights):
        if role == "troll":
            users.append(User(name, max(weight, busy), rng.uniform(0.4, 0.8), _spanish(rng)))
        elif role == "single":
            users.append(User(name, weight, 0.0, _spanish(rng), single=True))
        else:
            swears = rng.random() < 0.3
            users.append(User(name, weight, rng.uniform(0.002, 0.01) if swears else 0.0, _spanish(rng)))
    return users


def _spanish(rng: random.Random) -> float:
    """A user's share of Spanish: mostly Spanish, mostly English or both (about 60/40 overall)."""
    return rng.choices((0.92, 0.08, 0.5), weights=(56, 32, 12))[0]


def timestamps(rng: random.Random, count: int, days: float, now: datetime) -> list[datetime]:
    """`count` times in (now - days, now], whole seconds, sorted, following HOURLY_ACTIVITY."""
    span = days * 86400.0
    out = []
    while len(out) < count:
        t = now - timedelta(seconds=rng.random() * span)
        hour = t.hour + t.minute / 60
        low = HOURLY_ACTIVITY[int(hour) % 24]
        high = HOURLY_ACTIVITY[(int(hour) + 1) % 24]
        if rng.random() < low + (high - low) * (hour - int(hour)):
            out.append(t.replace(microsecond=0))
    return sorted(out)


class _Slots(dict):
    """Template slots filled on demand: a word drawn from the vocabulary the first time a slot is used."""

    def __init__(self, vocab: dict[str, tuple[str, ...]], rng: random.Random, given: dict[str, str]):
        super().__init__(given)
        self.vocab, self.rng = vocab, rng

    def __missing__(self, slot: str) -> str:
        value = self[slot] = self.rng.choice(ANGRY_EMOJI if slot == "angry" else self.vocab[slot])
        return value


def _fill(template: str, vocab: dict[str, tuple[str, ...]], rng: random.Random, **given: str) -> str:
    return template.format_map(_Slots(vocab, rng, given))


def _contracted(text: str, language: str) -> str:
    """Spanish contracts `a el` and `de el` (a slot filled with `el partido`): `al`, `del`."""
    return re.sub(r"\b([Aa]|[Dd]e) el\b", r"\1l", text) if language == "es" else text


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def clean_text(rng: random.Random, language: str, mention: str) -> str:
    """A clean chat message in `language` ("es" or "en"); `mention` is another user's name."""
    vocab = VOCAB[language]
    kind = rng.choices(
        ("greeting", "question", "opinion", "reaction", "plan", "mention", "long", "emoji"),
        weights=(13, 19, 17, 20, 13, 7, 6, 5),
    )[0]
    if kind == "emoji":
        return rng.choice(EMOJI) * rng.randint(1, 3)
    if kind == "long":
        sentences = [
            _capitalised(_contracted(_fill(rng.choice(vocab[rng.choice(SENTENCE_KINDS)]), vocab, rng), language))
            for _ in range(rng.randint(3, 8))
        ]
        return ("\n" if rng.random() < 0.2 else " ").join(s if s.endswith(("?", "!")) else s + "." for s in sentences)
    text = _contracted(_fill(rng.choice(vocab[kind]), vocab, rng, name=mention), language)
    if kind == "greeting" and rng.random() < 0.3:
        text += rng.choice((", ", "! ")) + _fill(rng.choice(vocab["question"]), vocab, rng)
    if rng.random() < 0.3:
        text = _capitalised(text)
    if rng.random() < 0.25:
        text += " " + rng.choice(EMOJI)
    return text


def profane_text(rng: random.Random, language: str, mention: str, words: ProfaneWords) -> str:
    """A message in `language` with one or two listed words, each plain or obfuscated."""
    vocab = VOCAB[language]
    listed = words.by_language[language]
    template = rng.choice(vocab["profane"])
    if "{w2}" not in template and rng.random() < 0.2:
        template += rng.choice((" {w2}", ", {w2}"))

    def written() -> str:
        word = rng.choice(listed)
        if rng.random() < 0.5:
            return word
        return obfuscated(word, random_obfuscations(rng), rng, words.allow)

    text = _fill(template, vocab, rng, name=mention, w=written(), w2=written())
    return text + " " + rng.choice(ANGRY_EMOJI) if rng.random() < 0.2 else text


def _message_bytes(author, data, timestamp, **extra) -> bytes:
    body = {"author": author, "data": data, "timestamp": timestamp, **extra}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _stamp(t: datetime) -> str:
    return t.strftime(contract.TIMESTAMP_FORMAT)


def malformed_value(kind: str, rng: random.Random, author: str, data: str, sent_at: datetime) -> bytes:
    """The value of a malformed record of `kind`, as a buggy client might send it."""
    ts = _stamp(sent_at)
    if kind == "not_json":
        return rng.choice(
            (
                f"author={author}; data={data}",
                data,
                f"<message from='{author}'>{data}</message>",
                f"{{'author': '{author}', 'data': '{data}'}}",
            )
        ).encode("utf-8")
    if kind == "invalid_utf8":
        return b"\xff\xfe" + bytes(rng.randrange(256) for _ in range(rng.randint(8, 40))) + b"\xc3\x28"
    if kind == "json_array":
        return json.dumps([author, data, ts], ensure_ascii=False).encode("utf-8")
    if kind == "missing_field":
        body = {"author": author, "data": data, "timestamp": ts}
        del body[rng.choice(contract.MESSAGE_FIELDS)]
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    if kind == "wrong_type":
        return _message_bytes(author, rng.choice((42, 3.14, -1, 1e6)), ts)
    if kind == "extra_field":
        return _message_bytes(
            author,
            data,
            ts,
            **rng.choice(({"room": "general"}, {"id": rng.randint(1, 999)}, {"reply_to": None}, {"lang": "es"})),
        )
    if kind == "empty_data":
        return _message_bytes(author, rng.choice(("", " ", "   ", "\n", "\u3000")), ts)
    if kind == "blank_author":
        return _message_bytes(rng.choice(("", " ", "  ", "\t")), data, ts)
    if kind == "too_long_data":
        return _message_bytes(author, (data + " ") * (contract.MAX_DATA_CHARS // max(1, len(data)) + 2), ts)
    if kind == "bad_timestamp":
        bad = rng.choice(
            (
                sent_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                str(int(sent_at.timestamp())),
                sent_at.strftime("%d/%m/%Y %H:%M"),
                sent_at.strftime("%Y-%m-%d"),
                sent_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                "yesterday",
                "2026-02-30 10:00:00",
            )
        )
        return _message_bytes(author, data, bad)
    raise ValueError(f"unknown malformed kind {kind!r}")


def _message_counts(rng: random.Random, users: list[User], total: int) -> list[int]:
    """How many valid messages each user sends: one each (as far as `total` goes), the rest by weight."""
    counts = [1 if i < total else 0 for i in range(len(users))]
    active = [i for i, u in enumerate(users) if not u.single] or list(range(len(users)))
    for i in rng.choices(active, weights=[users[i].weight for i in active], k=max(0, total - len(users))):
        counts[i] += 1
    return counts


def _profane_positions(rng: random.Random, propensities: list[float], k: int) -> set[int]:
    """`k` positions drawn without replacement, each with probability proportional to its propensity
    (Efraimidis-Spirakis: the k largest log(u)/w); zero-propensity ones only when there are not enough."""

    def key(w: float) -> tuple[bool, float]:
        u = 1.0 - rng.random()  # (0, 1]
        return (True, math.log(u) / w) if w > 0 else (False, u)

    keys = [key(w) for w in propensities]
    return set(sorted(range(len(keys)), key=keys.__getitem__, reverse=True)[:k])


@dataclass(frozen=True)
class Plan:
    """How many records of each sort `generate` makes."""

    records: int
    valid: int
    profane: int
    malformed: int
    users: int  # distinct authors of valid messages: every user sends one, as far as they go


def plan(n: int, users: int, profane_share: float, malformed_share: float) -> Plan:
    malformed = round(n * malformed_share)
    valid = n - malformed
    return Plan(n, valid, round(valid * profane_share), malformed, min(users, valid))


def generate(
    n: int,
    users: int,
    days: float,
    profane_share: float,
    malformed_share: float,
    seed: int,
    now: datetime,
    words: ProfaneWords | None = None,
) -> list[DemoRecord]:
    """`n` records for `chat` in chronological order: round(n × malformed_share) malformed, the rest
    valid messages of which round(valid × profane_share) profane.

    Deterministic: the same arguments give the same records. Users, texts and labels depend on
    `seed` only; timestamps (ending at `now`) and message ids on `seed` and `now`: a later run
    with the same seed repeats the conversation with new ids, so the ledger and the feed do not
    take it for re-deliveries.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    words = words or load_profane_words()
    rng = random.Random(seed)  # users, texts, labels
    clock = random.Random(f"{seed}/{now.isoformat()}")  # timestamps and message ids
    people = make_users(rng, users)
    times = timestamps(clock, n, days, now)
    counts = plan(n, users, profane_share, malformed_share)
    n_malformed, n_valid = counts.malformed, counts.valid
    malformed_at = set(rng.sample(range(n), n_malformed))
    valid_at = [i for i in range(n) if i not in malformed_at]

    authors = [u for u, count in zip(people, _message_counts(rng, people, n_valid)) for _ in range(count)]
    rng.shuffle(authors)
    by_position = dict(zip(valid_at, authors))
    profane = _profane_positions(rng, [by_position[i].propensity for i in valid_at], counts.profane)
    profane_at = {valid_at[j] for j in profane}

    kinds = list(MALFORMED_KINDS)
    rng.shuffle(kinds)
    weights = [u.weight for u in people]
    records: list[DemoRecord] = []
    bad = 0
    for i, sent_at in enumerate(times):
        mention = rng.choice(people).name
        if i in malformed_at:
            label = kinds[bad % len(kinds)]  # every kind in turn
            bad += 1
            author = rng.choices(people, weights=weights)[0]
            language = "es" if rng.random() < author.spanish else "en"
            value = malformed_value(label, rng, author.name, clean_text(rng, language, mention), sent_at)
            garbage = label in ("not_json", "invalid_utf8")
            records.append(
                DemoRecord(
                    None if garbage else author.name.encode("utf-8"),
                    value,
                    ((contract.MESSAGE_ID_HEADER, _uuid(clock)),),
                    label,
                    None if label == "invalid_utf8" else author.name,
                    sent_at,
                )
            )
            continue
        author = by_position[i]
        language = "es" if rng.random() < author.spanish else "en"
        if i in profane_at:
            label, data = PROFANE, profane_text(rng, language, mention, words)
        else:
            label, data = CLEAN, clean_text(rng, language, mention)
        records.append(
            DemoRecord(
                author.name.encode("utf-8"),
                _message_bytes(author.name, data, _stamp(sent_at)),
                ((contract.MESSAGE_ID_HEADER, _uuid(clock)),),
                label,
                author.name,
                sent_at,
            )
        )
    return records


def _uuid(rng: random.Random) -> bytes:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode("ascii")


# ---------------------------------------------------------------------------------------------
# What was generated


@dataclass(frozen=True)
class Summary:
    records: int
    valid: int
    profane: int
    malformed: dict[str, int]
    users: int  # distinct authors of valid messages
    users_with_3_profane: int  # the ones the ledger will block (3 strikes)
    first: datetime | None
    last: datetime | None

    @property
    def clean(self) -> int:
        return self.valid - self.profane


def summarize(records: Sequence[DemoRecord]) -> Summary:
    labels = Counter(r.label for r in records)
    profane_per_user = Counter(r.author for r in records if r.label == PROFANE)
    return Summary(
        records=len(records),
        valid=labels[CLEAN] + labels[PROFANE],
        profane=labels[PROFANE],
        malformed={kind: labels[kind] for kind in MALFORMED_KINDS if labels[kind]},
        users=len({r.author for r in records if r.is_valid}),
        users_with_3_profane=sum(1 for count in profane_per_user.values() if count >= 3),
        first=records[0].sent_at if records else None,
        last=records[-1].sent_at if records else None,
    )


def summary_lines(summary: Summary) -> list[str]:
    share = summary.profane / summary.valid if summary.valid else 0.0
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.malformed.items())) or "none"
    lines = [
        f"{summary.valid} valid messages from {summary.users} users: {summary.clean} clean, "
        f"{summary.profane} profane-labelled ({share:.1%}); "
        f"{summary.users_with_3_profane} users with 3+ profane messages (the ledger blocks them)",
        f"{sum(summary.malformed.values())} malformed: {kinds}",
    ]
    if summary.first is not None:
        lines.append(
            f"timestamps {_stamp(summary.first)} .. {_stamp(summary.last)} UTC "
            f"({(summary.last - summary.first).total_seconds() / 86400:.1f} days)"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Sending


class SendError(RuntimeError):
    """Kafka could not take the records; the message says where it stopped."""


def _producer(bootstrap: str, timeout_s: float) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="chat-demo-data",
        acks="all",
        enable_idempotence=True,
        max_in_flight_requests_per_connection=5,
        linger_ms=5,
        batch_size=256 * 1024,
        bootstrap_timeout_ms=int(timeout_s * 1000),
        max_block_ms=int(timeout_s * 1000),
        request_timeout_ms=int(timeout_s * 1000),
        delivery_timeout_ms=int(timeout_s * 3000),
        allow_auto_create_topics=False,
        **kafka_client_kwargs(),  # SASL_SSL on a secured cluster, nothing by default
    )


def send(
    records: Sequence[DemoRecord],
    bootstrap: str,
    topic: str = contract.TOPIC_CHAT,
    progress: Callable[[int, float], None] | None = None,
    timeout_s: float = 10.0,
    chunk: int = 2000,
) -> float:
    """Send `records` in order and wait until Kafka acknowledged every one; return the seconds it took.

    Calls `progress(acknowledged, elapsed_s)` after each chunk. Raises SendError when Kafka
    cannot be reached, the topic does not exist, or a record is not acknowledged.
    """
    started = time.monotonic()
    try:
        producer = _producer(bootstrap, timeout_s)
    except KafkaError as exc:
        raise SendError(
            f"cannot reach Kafka at {bootstrap} within {timeout_s:g}s ({type(exc).__name__}): "
            "is the stack up (make up)?"
        ) from None
    acknowledged = 0
    try:
        try:
            producer.partitions_for(topic)
        except KafkaTimeoutError:
            raise SendError(
                f"topic {topic!r} not found on Kafka at {bootstrap} within {timeout_s:g}s (make up creates it)"
            ) from None
        for start in range(0, len(records), chunk):
            futures = [
                producer.send(topic, key=r.key, value=r.value, headers=list(r.headers))
                for r in records[start : start + chunk]
            ]
            producer.flush(timeout=timeout_s * 3)
            for future in futures:
                future.get(timeout=0)  # raises the record's error, if any
            acknowledged += len(futures)
            if progress:
                progress(acknowledged, time.monotonic() - started)
    except KafkaError as exc:
        raise SendError(
            f"Kafka at {bootstrap} stopped acknowledging after {acknowledged} of {len(records)} "
            f"records ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        producer.close(timeout=timeout_s)
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# Command line


def default_users(n: int) -> int:
    return max(1, min(n, MAX_USERS, max(20, n // 60)))


def argument_type(convert: Callable[[str], float], noun: str, accept: Callable[[float], bool], refusal: str):
    """An argparse `type`: `convert` the text (else "'x' is not `noun`"), then `accept` it (else "x `refusal`")."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{text} {refusal}")
        return value

    return parse


# a whole number of at least 1 (underscores allowed: 1_000_000)
positive_int = argument_type(int, "a whole number", lambda v: v >= 1, "is less than 1")
_share = argument_type(float, "a number", lambda v: 0.0 <= v <= 1.0, "is not a share between 0 and 1 (0.06 means 6%)")
_days = argument_type(float, "a number", lambda v: 0 < v <= MAX_DAYS, f"is not a number of days in (0, {MAX_DAYS:g}]")


def bootstrap_problem(bootstrap: str) -> str | None:
    """What is wrong with a `HOST:PORT[,HOST:PORT...]` list, or None."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return f"{server.strip()!r} is not HOST:PORT"
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stack.demo_data",
        description="Send realistic chat traffic (Spanish and English, some profane, some malformed) "
        "straight to the Kafka topic of a running stack, so the ledger's per-user statistics "
        "and reports have more than a handful of rows.",
        epilog="Example: python -m stack.demo_data -n 20000 --days 14 --seed 7. The same seed sends the "
        "same users and texts (with new message ids and timestamps ending now).",
    )
    parser.add_argument(
        "-n",
        type=positive_int,
        default=DEFAULT_N,
        metavar="N",
        help=f"records to send, malformed ones included (default {DEFAULT_N}, at most {MAX_N:,})",
    )
    parser.add_argument(
        "--users",
        type=positive_int,
        metavar="U",
        help=f"distinct users (default max(20, N / 60), at most {MAX_USERS} and at most N)",
    )
    parser.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        metavar="D",
        help=f"spread the timestamps over the last D days up to now, UTC (default {DEFAULT_DAYS:g})",
    )
    parser.add_argument(
        "--profane-share",
        type=_share,
        default=DEFAULT_PROFANE_SHARE,
        metavar="P",
        help=f"share of the valid messages that are profane (default {DEFAULT_PROFANE_SHARE:g})",
    )
    parser.add_argument(
        "--malformed-share",
        type=_share,
        default=DEFAULT_MALFORMED_SHARE,
        metavar="M",
        help=f"share of the records that are malformed (default {DEFAULT_MALFORMED_SHARE:g})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="random seed, to repeat a run's users and texts (default: a new one, printed)",
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (default CHAT_KAFKA_BOOTSTRAP or 127.0.0.1:CHAT_KAFKA_PORT)",
    )
    parser.add_argument(
        "--topic", default=contract.TOPIC_CHAT, help=f"topic to send to (default {contract.TOPIC_CHAT})"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for Kafka to answer (default 10)",
    )
    args = parser.parse_args(argv)
    if args.n > MAX_N:
        parser.error(f"argument -n: {args.n:,} is more than {MAX_N:,} (the records are built in memory first)")
    if args.users is not None and args.users > min(args.n, MAX_USERS):
        parser.error(
            f"argument --users: {args.users} is more than {min(args.n, MAX_USERS)} (at most N and at most {MAX_USERS})"
        )
    if args.timeout <= 0:
        parser.error("argument --timeout: must be more than 0 seconds")
    if args.users is None:
        args.users = default_users(args.n)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    if args.bootstrap is None:
        args.bootstrap = settings.load().kafka_bootstrap
    if problem := bootstrap_problem(args.bootstrap):
        parser.error(f"argument --bootstrap: {problem}")
    return args


class Progress:
    """Prints a progress line at every tenth of the records, but at most one every `every_s` seconds."""

    def __init__(self, total: int, say: Callable[[str], None], every_s: float = 2.0):
        self.total, self.say, self.every_s = total, say, every_s
        self.acknowledged = 0
        self.tenth = 0
        self.last_at = 0.0

    def __call__(self, acknowledged: int, elapsed_s: float) -> None:
        self.acknowledged = acknowledged
        tenth = acknowledged * 10 // self.total
        if acknowledged < self.total and tenth > self.tenth and elapsed_s - self.last_at >= self.every_s:
            self.tenth, self.last_at = tenth, elapsed_s
            self.say(
                f"{acknowledged}/{self.total} sent ({acknowledged / self.total:.0%}), "
                f"{acknowledged / elapsed_s:,.0f} records/s"
            )


def say(text: str) -> None:
    print(f"{PROG}: {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = plan(args.n, args.users, args.profane_share, args.malformed_share)
    say(
        f"sending {counts.records} records ({counts.valid} messages from {counts.users} users, {counts.profane} "
        f"profane, {counts.malformed} malformed) over the last {args.days:g} days to {args.topic} at "
        f"{args.bootstrap} (seed {args.seed})"
    )
    progress = Progress(args.n, say)
    started = time.monotonic()
    try:
        records = generate(
            args.n, args.users, args.days, args.profane_share, args.malformed_share, args.seed, datetime.now(UTC)
        )
        built_s = time.monotonic() - started
        elapsed = send(records, args.bootstrap, args.topic, progress, args.timeout)
    except SendError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted: {progress.acknowledged} of {args.n} records were acknowledged by {args.topic}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    say(
        f"done: {len(records)} records acknowledged by {args.topic} in {elapsed:.1f}s "
        f"({len(records) / max(elapsed, 1e-9):,.0f} records/s), built in {built_s:.1f}s before"
    )
    for line in summary_lines(summarize(records)):
        say(f"  {line}")
    return 0


if __name__ == "__main__":
    # kafka-python logs its connection errors itself; this command reports them, in one line
    logging.getLogger("kafka").addHandler(logging.NullHandler())
    logging.getLogger("kafka").propagate = False
    sys.exit(main())
