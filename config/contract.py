"""The chat's contract, shared by the API, the Spark jobs and the UI: topics, headers, formats, limits, notices.

Constants only (no environment, no imports beyond the standard library), so
every layer can use them. README "Data flow" and "Moderation" describe them.
"""

from __future__ import annotations

import unicodedata

TOPIC_CHAT = "chat"
TOPIC_CONTROLLED = "chat_controlled"
TOPIC_NOTICES = "chat_notices"
# moderators' actions (unblock), from the API to the ledger: the ledger is the one writer of the Delta tables
TOPIC_ACTIONS = "chat_actions"
# the moderators' chat-wide slow mode, an action on `chat_actions`: `seconds` between two messages of a user (0: off)
SLOW_MODE_ACTION = "slow_mode"
MAX_SLOW_MODE_S = 3600  # one message an hour is already a closed chat
# a new account, from the API process that granted it to the ledger (Delta `accounts`): its id, name, keys and
# time, never its password hash or an address
ACCOUNT_ACTION = "account"
# the `author` of a chat-wide action in `moderator_actions` (no name can hold it)
WHOLE_CHAT = "*"
# who holds which name: the API's sessions (claims, renewals, ends), keyed by the name; compacted
TOPIC_SESSIONS = "chat_sessions"
# the accounts (sign-ups with their password hashes, the addresses each signed in from, lifted address holds),
# every record under ACCOUNTS_KEY so that one partition orders them all; kept for ever, never compacted
TOPIC_ACCOUNTS = "chat_accounts"
ACCOUNTS_KEY = "accounts"
# a `chat_accounts` record of a wrong password or a sign-up (an account key, a client address; nothing secret):
# every API process counts them, so the sign-in and sign-up limits hold across processes
ACCOUNT_MISS_OP = "miss"
TOPICS = (TOPIC_CHAT, TOPIC_CONTROLLED, TOPIC_NOTICES, TOPIC_ACTIONS, TOPIC_SESSIONS, TOPIC_ACCOUNTS)
# topic settings beyond the defaults: the sessions keep the latest record per name, not 7 days of them
TOPIC_CONFIGS = {
    TOPIC_SESSIONS: {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    TOPIC_ACCOUNTS: {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
}

# A message as it travels in Kafka: exactly these keys, all strings.
MESSAGE_FIELDS = ("author", "data", "timestamp")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC, for Python's strftime/strptime
SPARK_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"  # the same, for Spark's datetime patterns
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
MAX_AUTHOR_CHARS = 64
MAX_PASSWORD_CHARS = 256
# a UI process reads the chat under a session of its own named so; only CHAT_READER_TOKEN opens one
READER_PREFIX = "ui-reader-"


def is_reader_name(name: str) -> bool:
    """A name of the UI's feed readers, in any case: no person may take one."""
    return name.casefold().startswith(READER_PREFIX)


MAX_DATA_CHARS = 2000
# session tokens one POST /notices/poll may carry: the joined users one UI process follows
MAX_POLL_TOKENS = 1000

# Author names: what a name may not hold, one definition for the API's check (Python) and the relay's
# (a Spark regex built from the same data), so that a record written straight to Kafka meets the API's rules.
# Unicode general categories a name may not contain: controls, surrogates, line and paragraph separators;
# and of the space separators (Zs) only U+0020 is allowed.
AUTHOR_CONTROL_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")
AUTHOR_SPACE_CATEGORY = "Zs"
AUTHOR_FORBIDDEN_CHARS = "/"  # a name is a path segment of /users/<author>
# right-to-left overrides, embeddings and isolates: they make a name display as another one
AUTHOR_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# zero-width and soft-hyphen format characters: inside a name they make it look like another one
# (the zero-width joiner is not among them: emoji sequences need it)
AUTHOR_HIDDEN_CHARS = "\u00ad\u180e\u200b\u200c\u2060\ufeff"
# a name made only of these categories, or of these blank letters (Hangul fillers, the braille blank), shows nothing
AUTHOR_INVISIBLE_CATEGORIES = ("Cf", "Zs", "Mn")
AUTHOR_BLANK_CHARS = "\u115f\u1160\u3164\uffa0\u2800"
# What is wrong with a name, in the rules' order; `{field}` is the name's field ("author").
AUTHOR_PROBLEMS = {
    "control": "{field} must not contain control characters or line breaks",
    "forbidden": "{field} must not contain '/' (it names a user in URLs such as /users/<author>)",
    "invisible": "{field} must have visible characters and no text-direction or zero-width characters",
}

# Kafka headers
MESSAGE_ID_HEADER = "message_id"  # on `chat` and `chat_controlled`: the API's id of the message
PROFANE_HEADER = "profane"  # on `chat_controlled`: "true" when the relay masked profanity, else "false"
CHAT_POSITION_HEADER = "chat_position"  # on `chat_controlled`: "partition:offset" of the original in `chat`
NOTICE_ID_HEADER = "notice_id"  # on `chat_notices`: readers de-duplicate on it
# On `chat_controlled`, the relay's verdict beside PROFANE_HEADER ("true" when the message is a strike):
TERMS_HEADER = "terms"  # JSON array of the listed words matched, as listed ("[]" when clean)
CATEGORY_HEADER = "category"  # the most severe category matched (CATEGORIES order), "" when clean
LISTS_VERSION_HEADER = "lists_version"  # the version of the word lists that judged the message
# On `chat` (the API's verdict, decided once where each author's recent messages are known) and passed on by the
# relay to `chat_controlled`: present only on spam. `spam` is the reason (SPAM_REASON), `spam_strike` "true" when
# this copy is the author's spam strike of the window, "false" when it is only withheld.
SPAM_HEADER = "spam"
SPAM_STRIKE_HEADER = "spam_strike"
SPAM_REASON = "repeat:{copies}/{window_s:g}s"  # the copies of one text in the window, this one included
SPAM_VERDICT = "spam"  # `messages.verdict` of a withheld spam copy

# Moderation categories, most severe first, and what a deployment may do with a match of each
CATEGORIES = ("discrimination", "sexual", "insult", "profanity", "spam")
SPAM_CATEGORY = "spam"  # the category of a strike for repeated messages (`strikes.category`, a notice's `category`)
ACTIONS = ("strike", "mask", "allow")  # mask and count a strike, mask only, leave alone

# profane messages (strikes) that block their author
STRIKE_LIMIT = 3

# The languages the chat speaks to people (Accept-Language: Spanish for es-*, else the default)
LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"

# Notices to a user (`chat_notices`): their kinds, the fields the API serves, and their texts.
NOTICE_KINDS = ("warning", "blocked", "unblocked")
NOTICE_FIELDS = ("id", "author", "kind", "strike", "limit", "terms", "message_id", "text", "timestamp")
# served only when the notice has them: `category` (SPAM_CATEGORY for a spam strike)
NOTICE_OPTIONAL_FIELDS = ("category",)
# the English texts, which the ledger writes into each notice's `text`
NOTICE_TEXTS = {
    "warning": "Warning: strike {strike} of {limit} for {terms}. Your message was masked. "
    "At {limit} strikes you are blocked.",
    "blocked": "You are blocked: strike {strike} of {limit} for {terms}. You can no longer send or read messages.",
    "unblocked": "A moderator unblocked you: your strikes are cleared and you can send and read messages again.",
}
# every language's texts (same kinds, same parameters): readers word a notice from its kind and numbers
NOTICE_TEXTS_BY_LANGUAGE = {
    "en": NOTICE_TEXTS,
    "es": {
        "warning": "Aviso: falta {strike} de {limit} por {terms}. Tu mensaje se ha tapado. "
        "Con {limit} faltas se te bloquea.",
        "blocked": "Se te ha bloqueado: falta {strike} de {limit} por {terms}. Ya no puedes enviar ni leer mensajes.",
        "unblocked": "El equipo de moderación te ha desbloqueado: tus faltas se han borrado y puedes volver a "
        "enviar y leer mensajes.",
    },
}
# a strike of SPAM_CATEGORY (the same message again and again): its own words, same kinds and parameters
SPAM_NOTICE_TEXTS_BY_LANGUAGE = {
    "en": {
        "warning": "Warning: strike {strike} of {limit} for spam: you sent the same message again and again, "
        "and others did not see it. At {limit} strikes you are blocked.",
        "blocked": "You are blocked: strike {strike} of {limit} for spam (the same message again and again). "
        "You can no longer send or read messages.",
    },
    "es": {
        "warning": "Aviso: falta {strike} de {limit} por spam: has enviado el mismo mensaje una y otra vez "
        "y nadie más lo ha visto. Con {limit} faltas se te bloquea.",
        "blocked": "Se te ha bloqueado: falta {strike} de {limit} por spam (el mismo mensaje una y otra vez). "
        "Ya no puedes enviar ni leer mensajes.",
    },
}
# the API's 403 to a blocked user (and the UI's wording when it only has the user's record)
BLOCKED_ERROR = (
    "{author} is blocked{since} after {strikes} strikes for profanity: blocked users can neither send nor read messages"
)


def notice_text(
    kind: str,
    strike: int = 0,
    limit: int = STRIKE_LIMIT,
    terms: tuple[str, ...] | list[str] = (),
    language: str = DEFAULT_LANGUAGE,
    category: str | None = None,
) -> str:
    """The text of a notice, as the user reads it in `language` (the default for one not spoken here); a strike
    of SPAM_CATEGORY has its own words."""
    texts = NOTICE_TEXTS_BY_LANGUAGE.get(language, NOTICE_TEXTS)
    if category == SPAM_CATEGORY and kind != "unblocked":
        texts = SPAM_NOTICE_TEXTS_BY_LANGUAGE.get(language, SPAM_NOTICE_TEXTS_BY_LANGUAGE[DEFAULT_LANGUAGE])
    return texts[kind].format(strike=strike, limit=limit, terms=", ".join(terms))


def author_problem(name: str, field: str = "author") -> str | None:
    """What is wrong with a (non-empty, stripped) author name under the AUTHOR_* rules, or None when nothing is."""
    rule = author_problem_rule(name)
    return None if rule is None else AUTHOR_PROBLEMS[rule].format(field=field)


def author_problem_rule(name: str) -> str | None:
    """The AUTHOR_PROBLEMS rule a (non-empty, stripped) author name breaks first, or None."""
    categories = [unicodedata.category(ch) for ch in name]
    if any(
        c in AUTHOR_CONTROL_CATEGORIES or (c == AUTHOR_SPACE_CATEGORY and ch != " ") for ch, c in zip(name, categories)
    ):
        return "control"
    if any(ch in AUTHOR_FORBIDDEN_CHARS for ch in name):
        return "forbidden"
    if any(ch in AUTHOR_BIDI_CONTROLS or ch in AUTHOR_HIDDEN_CHARS for ch in name) or all(
        c in AUTHOR_INVISIBLE_CATEGORIES or ch in AUTHOR_BLANK_CHARS for ch, c in zip(name, categories)
    ):
        return "invisible"
    return None


def spam_reason(copies: int, window_s: float) -> str:
    """The `spam` header's value: the `copies`-th copy of one text within `window_s` seconds."""
    return SPAM_REASON.format(copies=copies, window_s=window_s)


def blocked_error(author: str, strikes: int, blocked_at: str | None) -> str:
    since = f" since {blocked_at} UTC" if blocked_at else ""
    return BLOCKED_ERROR.format(author=author, since=since, strikes=strikes)
