"""Every text the UI shows, in Spanish and English, and how a person's language is chosen.

A text is a catalog id plus named parameters (:class:`Text`); it is put in a language only when it is
shown, so one moderation notice reads in Spanish to one person and in English to another. Whole
sentences are translated, never fragments glued together: word order is each language's own, and
a number that changes the words (``{limit}`` strikes) picks its :class:`Plural` form.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeGuard

from htmltools import TagChild

Lang = Literal["es", "en"]
LANGUAGES: tuple[Lang, ...] = ("es", "en")
DEFAULT_LANGUAGE: Lang = "en"
LANGUAGE_NAMES: dict[Lang, str] = {"es": "Español", "en": "English"}
"""Each language's name in itself, for the switch."""
COOKIE = "chat_lang"
"""The browser remembers the person's choice in this cookie."""


@dataclass(frozen=True, slots=True)
class Plural:
    """A text whose words depend on the number in the parameter named ``count``."""

    count: str
    one: str
    other: str

    def form(self, n: object) -> str:
        # one/other is the whole CLDR rule for integers in both languages
        return self.one if n == 1 else self.other


Entry = str | Plural

CATALOG: dict[str, dict[Lang, Entry]] = {
    # -- the page and its first screen
    "app.title": {"es": "Chat moderado", "en": "Moderated chat"},
    "lang.label": {"es": "Idioma", "en": "Language"},
    "intro.what": {
        "es": "Una sala de chat pública: todas las personas conectadas leen cada mensaje en cuanto llega.",
        "en": "A public chat room: everyone connected reads every message as soon as it arrives.",
    },
    "intro.rules_title": {"es": "Los mensajes se moderan", "en": "Messages are moderated"},
    "intro.masked": {
        "es": "Las palabras malsonantes se tapan con asteriscos (****).",
        "en": "Profane words are masked with asterisks (****).",
    },
    "intro.strike": {
        "es": "Cada mensaje tapado es una falta, y recibes un aviso.",
        "en": "Each masked message is a strike, and you get a warning.",
    },
    "intro.limit": {
        "es": Plural(
            "limit",
            one="Con {limit} falta se te bloquea: ya no puedes enviar ni leer mensajes.",
            other="Con {limit} faltas se te bloquea: ya no puedes enviar ni leer mensajes.",
        ),
        "en": Plural(
            "limit",
            one="At {limit} strike you are blocked: you can neither send nor read messages.",
            other="At {limit} strikes you are blocked: you can neither send nor read messages.",
        ),
    },
    "intro.unblock": {
        "es": "El equipo de moderación puede desbloquearte.",
        "en": "A moderator can unblock you.",
    },
    # -- joining
    "join.name_label": {"es": "Tu nombre", "en": "Your name"},
    "join.name_placeholder": {"es": "De 1 a {max} caracteres", "en": "1 to {max} characters"},
    "join.button": {"es": "Entrar al chat", "en": "Join the chat"},
    "join.chatting_as": {"es": "Estás en el chat como {name}.", "en": "Chatting as {name}."},
    "join.name_empty": {
        "es": "Escribe un nombre para entrar al chat.",
        "en": "Please enter a name to join the chat.",
    },
    "join.name_too_long": {
        "es": "Los nombres pueden tener como máximo {max} caracteres (el tuyo tiene {length}).",
        "en": "Names can be at most {max} characters (yours has {length}).",
    },
    "join.name_control": {
        "es": "Los nombres no pueden contener caracteres de control.",
        "en": "Names cannot contain control characters.",
    },
    "join.name_reserved": {
        "es": "Los nombres que empiezan por «{prefix}» están reservados; elige otro.",
        "en": "Names starting with “{prefix}” are reserved; please choose another.",
    },
    "join.name_in_use": {
        "es": "Ese nombre lo está usando otra persona; elige otro o espera a que termine su sesión.",
        "en": "That name is in use by someone else; choose another or wait until their session ends.",
    },
    "join.name_rejected": {
        "es": "Ese nombre no se puede usar: necesita caracteres visibles y no puede llevar «/», "
        "saltos de línea ni caracteres de control.",
        "en": "That name cannot be used: it needs visible characters and no “/”, line breaks or control characters.",
    },
    "join.unreachable": {
        "es": "No se puede contactar con el servidor del chat; inténtalo de nuevo en un momento.",
        "en": "Cannot reach the chat server; try again in a moment.",
    },
    "join.unavailable": {
        "es": "El chat no está disponible en este momento; inténtalo de nuevo en un momento.",
        "en": "The chat is unavailable right now; try again in a moment.",
    },
    "join.failed": {"es": "No se puede entrar: {detail}", "en": "Cannot join: {detail}"},
    "join.session_lost": {
        "es": "Tu sesión caducó y otra persona ha tomado tu nombre; vuelve a entrar con otro nombre "
        "o cuando termine su sesión.",
        "en": "Your session expired and someone else has taken your name since; join again, "
        "under another name or once their session ends.",
    },
    # -- accounts: signing up and signing in (when the chat has no guest names)
    "account.signin_title": {"es": "Entrar con tu cuenta", "en": "Sign in"},
    "account.signup_title": {"es": "Crear una cuenta", "en": "Create an account"},
    "account.password_label": {"es": "Contraseña", "en": "Password"},
    "account.password_again_label": {"es": "Repite la contraseña", "en": "Password again"},
    "account.password_placeholder": {
        "es": Plural("min", one="Al menos {min} carácter", other="Al menos {min} caracteres"),
        "en": Plural("min", one="At least {min} character", other="At least {min} characters"),
    },
    "account.signin_button": {"es": "Entrar", "en": "Sign in"},
    "account.signup_button": {"es": "Crear la cuenta y entrar", "en": "Sign up and join"},
    "account.password_empty": {"es": "Escribe tu contraseña.", "en": "Please enter your password."},
    "account.password_too_short": {
        "es": Plural(
            "min",
            one="La contraseña debe tener al menos {min} carácter.",
            other="La contraseña debe tener al menos {min} caracteres.",
        ),
        "en": Plural(
            "min",
            one="The password must have at least {min} character.",
            other="The password must have at least {min} characters.",
        ),
    },
    "account.password_too_long": {
        "es": "La contraseña puede tener como máximo {max} caracteres.",
        "en": "The password can have at most {max} characters.",
    },
    "account.password_mismatch": {
        "es": "Las dos contraseñas no coinciden; escríbelas otra vez.",
        "en": "The two passwords do not match; please type them again.",
    },
    "account.name_taken": {
        "es": "Ese nombre, u otro que se le parece, ya es de otra persona; elige otro. "
        "Si la cuenta es tuya, entra con tu contraseña.",
        "en": "That name, or one that looks like it, is already taken; please choose another. "
        "If the account is yours, sign in with your password.",
    },
    "account.bad_credentials": {
        "es": "Nombre o contraseña incorrectos.",
        "en": "Wrong name or password.",
    },
    "account.too_many_attempts": {
        "es": "Demasiados intentos. Vuelve a intentarlo dentro de {wait}.",
        "en": "Too many attempts. Please try again in {wait}.",
    },
    "account.too_many_attempts_later": {
        "es": "Demasiados intentos. Vuelve a intentarlo más tarde.",
        "en": "Too many attempts. Please try again later.",
    },
    "account.address_held": {
        "es": "Tras un bloqueo, no se pueden crear cuentas desde tu conexión durante un tiempo. "
        "Vuelve a intentarlo dentro de {wait}.",
        "en": "After a block, no new accounts can be created from your connection for a while. "
        "Please try again in {wait}.",
    },
    "account.address_held_later": {
        "es": "Tras un bloqueo, no se pueden crear cuentas desde tu conexión durante un tiempo. "
        "Vuelve a intentarlo más tarde.",
        "en": "After a block, no new accounts can be created from your connection for a while. Please try again later.",
    },
    "account.password_rejected": {
        "es": "El servidor del chat no acepta esa contraseña; prueba con otra.",
        "en": "The chat server does not accept that password; please try another.",
    },
    "account.session_ended": {
        "es": "Tu sesión ha terminado; vuelve a entrar con tu nombre y tu contraseña.",
        "en": "Your session has ended; please sign in again with your name and password.",
    },
    # -- moderators: their sign-in and page
    "mod.signin_title": {"es": "Moderación", "en": "Moderators"},
    "mod.name_label": {"es": "Nombre de moderación", "en": "Moderator name"},
    "mod.secret_label": {"es": "Clave de moderación", "en": "Moderator secret"},
    "mod.signin_button": {"es": "Entrar a moderar", "en": "Sign in to moderate"},
    "mod.signout_button": {"es": "Dejar de moderar", "en": "Stop moderating"},
    "mod.missing": {
        "es": "Escribe tu nombre y tu clave de moderación.",
        "en": "Please enter your moderator name and secret.",
    },
    "mod.bad_credentials": {
        "es": "Nombre o clave de moderación incorrectos.",
        "en": "Wrong moderator name or secret.",
    },
    "mod.off": {
        "es": "Este chat no tiene moderación configurada.",
        "en": "This chat has no moderators configured.",
    },
    "mod.too_many_attempts": {
        "es": "Demasiados intentos fallidos desde tu conexión. Vuelve a intentarlo dentro de {wait}.",
        "en": "Too many wrong attempts from your connection. Please try again in {wait}.",
    },
    "mod.too_many_attempts_later": {
        "es": "Demasiados intentos fallidos desde tu conexión. Vuelve a intentarlo más tarde.",
        "en": "Too many wrong attempts from your connection. Please try again later.",
    },
    "mod.not_moderator": {
        "es": "Ese token no es de moderación (o ya no vale); vuelve a entrar a moderar.",
        "en": "That is not a moderator's token (or it is no longer good); please sign in to moderate again.",
    },
    "mod.unreachable": {
        "es": "No se puede contactar con el servidor del chat; vuelve a intentarlo en un momento.",
        "en": "The chat server cannot be reached; please try again in a moment.",
    },
    "mod.rejected": {
        "es": "El servidor del chat no acepta ese nombre o esa clave.",
        "en": "The chat server does not accept that name or secret.",
    },
    "mod.failed": {"es": "No se pudo: {detail}", "en": "It did not work: {detail}"},
    "mod.page_title": {"es": "Moderación: {name}", "en": "Moderating as {name}"},
    "mod.blocked_title": {"es": "Usuarios bloqueados", "en": "Blocked users"},
    "mod.none_blocked": {"es": "No hay nadie bloqueado.", "en": "Nobody is blocked."},
    "mod.shown_of": {
        "es": Plural(
            "total",
            one="Se muestran {shown} de {total} usuario bloqueado.",
            other="Se muestran {shown} de {total} usuarios bloqueados.",
        ),
        "en": Plural(
            "total", one="Showing {shown} of {total} blocked user.", other="Showing {shown} of {total} blocked users."
        ),
    },
    "mod.strikes": {
        "es": Plural("count", one="{count} falta", other="{count} faltas"),
        "en": Plural("count", one="{count} strike", other="{count} strikes"),
    },
    "mod.since": {"es": "bloqueado desde {since} UTC", "en": "blocked since {since} UTC"},
    "mod.since_unknown": {"es": "bloqueado", "en": "blocked"},
    "mod.told": {"es": "Lo que se le avisó:", "en": "What they were told:"},
    "mod.no_notices": {
        "es": "Los avisos de este bloqueo ya no están en el servidor.",
        "en": "The notices of this block are no longer on the server.",
    },
    "mod.unblock_button": {"es": "Desbloquear a {name}", "en": "Unblock {name}"},
    "mod.unblock_sent": {
        "es": "Desbloqueo de {name} enviado (202); se aplica en unos segundos.",
        "en": "Unblock of {name} sent (202); it takes effect within seconds.",
    },
    "mod.unblock_failed": {
        "es": "No se pudo desbloquear a {name}: {reason}",
        "en": "Could not unblock {name}: {reason}",
    },
    "mod.unknown_user": {
        "es": "el servidor no conoce a ese usuario.",
        "en": "the server does not know that user.",
    },
    "mod.kafka_down": {
        "es": "el servidor del chat no puede guardarlo ahora; vuelve a intentarlo.",
        "en": "the chat server cannot record it right now; please try again.",
    },
    "mod.list_stale": {
        "es": "La lista no se puede actualizar: {reason}",
        "en": "The list cannot be refreshed: {reason}",
    },
    "guest.name_taken": {
        "es": "Ese nombre, u otro que se le parece, ya es de otra persona; elige otro.",
        "en": "That name, or one that looks like it, is already taken; please choose another.",
    },
    # -- how long to wait (from Retry-After), rounded up
    "wait.seconds": {
        "es": Plural("count", one="{count} segundo", other="{count} segundos"),
        "en": Plural("count", one="{count} second", other="{count} seconds"),
    },
    "wait.minutes": {
        "es": Plural("count", one="{count} minuto", other="{count} minutos"),
        "en": Plural("count", one="{count} minute", other="{count} minutes"),
    },
    "wait.hours": {
        "es": Plural("count", one="{count} hora", other="{count} horas"),
        "en": Plural("count", one="{count} hour", other="{count} hours"),
    },
    # -- the chat's input
    "chat.placeholder_join": {"es": "Entra con un nombre para chatear…", "en": "Join with a name to chat…"},
    "chat.placeholder_signin": {
        "es": "Entra o crea una cuenta para chatear…",
        "en": "Sign in or sign up to chat…",
    },
    "chat.placeholder_send": {"es": "Escribe como {name}…", "en": "Message as {name}…"},
    "chat.placeholder_blocked": {
        "es": "Se te ha bloqueado: ya no puedes enviar mensajes.",
        "en": "You are blocked: you can no longer send messages.",
    },
    "chat.input_label": {"es": "Tu mensaje", "en": "Your message"},
    "chat.send_label": {"es": "Enviar mensaje", "en": "Send message"},
    "chat.messages_label": {"es": "Mensajes del chat", "en": "Chat messages"},
    # -- the connection to the chat server
    "status.connecting": {"es": "Conectando con el servidor del chat…", "en": "Connecting to the chat server…"},
    "status.connected": {"es": "Conectado", "en": "Connected"},
    "status.unreachable": {
        "es": "No se puede contactar con el servidor del chat; reintentando…",
        "en": "Cannot reach the chat server; retrying…",
    },
    "status.malformed": {
        "es": "El servidor del chat envió una respuesta inesperada; reintentando…",
        "en": "The chat server sent an unexpected reply; retrying…",
    },
    "status.problem": {
        "es": "El servidor del chat informó de un problema: {detail}",
        "en": "The chat server reported a problem: {detail}",
    },
    # -- moderation notices, rendered from their kind and numbers
    "notice.warning": {
        "es": Plural(
            "limit",
            one="Aviso: falta {strike} de {limit} por {terms}. Tu mensaje se ha tapado. Con {limit} falta se te bloquea.",
            other="Aviso: falta {strike} de {limit} por {terms}. Tu mensaje se ha tapado. "
            "Con {limit} faltas se te bloquea.",
        ),
        "en": Plural(
            "limit",
            one="Warning: strike {strike} of {limit} for {terms}. Your message was masked. "
            "At {limit} strike you are blocked.",
            other="Warning: strike {strike} of {limit} for {terms}. Your message was masked. "
            "At {limit} strikes you are blocked.",
        ),
    },
    "notice.warning_no_terms": {
        "es": Plural(
            "limit",
            one="Aviso: falta {strike} de {limit} por lenguaje malsonante. Tu mensaje se ha tapado. "
            "Con {limit} falta se te bloquea.",
            other="Aviso: falta {strike} de {limit} por lenguaje malsonante. Tu mensaje se ha tapado. "
            "Con {limit} faltas se te bloquea.",
        ),
        "en": Plural(
            "limit",
            one="Warning: strike {strike} of {limit} for profanity. Your message was masked. "
            "At {limit} strike you are blocked.",
            other="Warning: strike {strike} of {limit} for profanity. Your message was masked. "
            "At {limit} strikes you are blocked.",
        ),
    },
    "notice.blocked": {
        "es": "Se te ha bloqueado: falta {strike} de {limit} por {terms}. Ya no puedes enviar ni leer mensajes. "
        "El equipo de moderación puede desbloquearte.",
        "en": "You are blocked: strike {strike} of {limit} for {terms}. You can no longer send or read messages. "
        "A moderator can unblock you.",
    },
    "notice.blocked_no_terms": {
        "es": "Se te ha bloqueado: falta {strike} de {limit} por lenguaje malsonante. "
        "Ya no puedes enviar ni leer mensajes. El equipo de moderación puede desbloquearte.",
        "en": "You are blocked: strike {strike} of {limit} for profanity. You can no longer send or read messages. "
        "A moderator can unblock you.",
    },
    "notice.warning_spam": {
        "es": Plural(
            "limit",
            one="Aviso: falta {strike} de {limit} por spam: has enviado el mismo mensaje una y otra vez y nadie más "
            "lo ha visto. Con {limit} falta se te bloquea.",
            other="Aviso: falta {strike} de {limit} por spam: has enviado el mismo mensaje una y otra vez y nadie "
            "más lo ha visto. Con {limit} faltas se te bloquea.",
        ),
        "en": Plural(
            "limit",
            one="Warning: strike {strike} of {limit} for spam: you sent the same message again and again, and "
            "others did not see it. At {limit} strike you are blocked.",
            other="Warning: strike {strike} of {limit} for spam: you sent the same message again and again, and "
            "others did not see it. At {limit} strikes you are blocked.",
        ),
    },
    "notice.blocked_spam": {
        "es": "Se te ha bloqueado: falta {strike} de {limit} por spam (el mismo mensaje una y otra vez). "
        "Ya no puedes enviar ni leer mensajes. El equipo de moderación puede desbloquearte.",
        "en": "You are blocked: strike {strike} of {limit} for spam (the same message again and again). "
        "You can no longer send or read messages. A moderator can unblock you.",
    },
    "notice.unblocked": {
        "es": "El equipo de moderación te ha desbloqueado: tus faltas se han borrado y puedes volver a "
        "enviar y leer mensajes.",
        "en": "A moderator unblocked you: your strikes are cleared and you can send and read messages again.",
    },
    "notice.verbatim": {"es": "{text}", "en": "{text}"},
    # -- the block, when no blocked notice explains it (the user's record, or a 403)
    "blocked.reason": {
        "es": Plural(
            "strikes",
            one="Se te ha bloqueado tras {strikes} falta por lenguaje malsonante: no puedes enviar ni leer "
            "mensajes. El equipo de moderación puede desbloquearte.",
            other="Se te ha bloqueado tras {strikes} faltas por lenguaje malsonante: no puedes enviar ni leer "
            "mensajes. El equipo de moderación puede desbloquearte.",
        ),
        "en": Plural(
            "strikes",
            one="You are blocked after {strikes} strike for profanity: you can neither send nor read messages. "
            "A moderator can unblock you.",
            other="You are blocked after {strikes} strikes for profanity: you can neither send nor read messages. "
            "A moderator can unblock you.",
        ),
    },
    "blocked.reason_since": {
        "es": Plural(
            "strikes",
            one="Se te bloqueó el {since} (UTC) tras {strikes} falta por lenguaje malsonante: no puedes enviar "
            "ni leer mensajes. El equipo de moderación puede desbloquearte.",
            other="Se te bloqueó el {since} (UTC) tras {strikes} faltas por lenguaje malsonante: no puedes enviar "
            "ni leer mensajes. El equipo de moderación puede desbloquearte.",
        ),
        "en": Plural(
            "strikes",
            one="You have been blocked since {since} UTC after {strikes} strike for profanity: you can neither "
            "send nor read messages. A moderator can unblock you.",
            other="You have been blocked since {since} UTC after {strikes} strikes for profanity: you can neither "
            "send nor read messages. A moderator can unblock you.",
        ),
    },
    # -- the strikes status line
    "strikes.masked": {
        "es": Plural(
            "limit",
            one="⚠ Falta {strikes} de {limit}: tu mensaje se ha tapado. Con {limit} falta se te bloquea.",
            other="⚠ Falta {strikes} de {limit}: tu mensaje se ha tapado. Con {limit} faltas se te bloquea.",
        ),
        "en": Plural(
            "limit",
            one="⚠ Strike {strikes} of {limit} — your message was masked. At {limit} strike you are blocked.",
            other="⚠ Strike {strikes} of {limit} — your message was masked. At {limit} strikes you are blocked.",
        ),
    },
    "strikes.record": {
        "es": Plural(
            "limit",
            one="⚠ Falta {strikes} de {limit} por lenguaje malsonante. Con {limit} falta se te bloquea.",
            other="⚠ Falta {strikes} de {limit} por lenguaje malsonante. Con {limit} faltas se te bloquea.",
        ),
        "en": Plural(
            "limit",
            one="⚠ Strike {strikes} of {limit} for profanity. At {limit} strike you are blocked.",
            other="⚠ Strike {strikes} of {limit} for profanity. At {limit} strikes you are blocked.",
        ),
    },
    "strikes.latest": {"es": "Último aviso:", "en": "Latest notice:"},
    "list.term": {"es": "«{term}»", "en": "“{term}”"},
    # -- sending
    "send.not_joined": {"es": "Entra al chat antes de enviar mensajes.", "en": "Join the chat before sending."},
    "send.refused": {"es": "Mensaje no enviado: {reason}", "en": "Message not sent: {reason}"},
    "send.too_long": {
        "es": "Mensaje no enviado: los mensajes pueden tener como máximo {max} caracteres.",
        "en": "Message not sent: messages can be at most {max} characters.",
    },
    "send.invalid": {
        "es": "Mensaje no enviado: no puede estar vacío ni contener caracteres de control.",
        "en": "Message not sent: it must not be empty or contain control characters.",
    },
    "send.unavailable": {
        "es": "Mensaje no enviado: el chat no está disponible en este momento; inténtalo de nuevo en un momento.",
        "en": "Message not sent: the chat is unavailable right now; try again in a moment.",
    },
    "send.unreachable": {
        "es": "Mensaje no enviado: no se puede contactar con el servidor del chat.",
        "en": "Message not sent: cannot reach the chat server.",
    },
    "send.timeout": {
        "es": "El servidor del chat no respondió a tiempo; puede que tu mensaje no se haya enviado.",
        "en": "The chat server did not answer in time; your message may not have been sent.",
    },
    "send.session_lost": {
        "es": "Mensaje no enviado: tu sesión caducó y ahora otra persona usa tu nombre.",
        "en": "Message not sent: your session expired and your name is now in use by someone else.",
    },
    "send.session_ended": {
        "es": "Mensaje no enviado: tu sesión ha terminado; vuelve a entrar con tu contraseña.",
        "en": "Message not sent: your session has ended; please sign in again with your password.",
    },
    "send.renew_failed": {
        "es": "Mensaje no enviado: no se pudo renovar tu sesión; inténtalo de nuevo.",
        "en": "Message not sent: your session could not be renewed; try again.",
    },
    "send.failed": {"es": "Mensaje no enviado: {detail}", "en": "Message not sent: {detail}"},
    "send.rate_limited": {
        "es": "Mensaje no enviado: estás enviando demasiado rápido. Podrás volver a enviar en {seconds} s; "
        "tu texto sigue en el cuadro.",
        "en": "Message not sent: you are sending too fast. You can send again in {seconds} s; "
        "your text is still in the box.",
    },
    "send.slow_mode": {
        "es": "Mensaje no enviado: el modo lento está activado. Podrás volver a enviar en {seconds} s; "
        "tu texto sigue en el cuadro.",
        "en": "Message not sent: slow mode is on. You can send again in {seconds} s; your text is still in the box.",
    },
    # -- the chat's limits
    "limits.slow_mode": {
        "es": "Modo lento: un mensaje cada {seconds} s",
        "en": "Slow mode: one message every {seconds} s",
    },
    "limits.countdown": {"es": "Podrás enviar de nuevo en {seconds} s", "en": "You can send again in {seconds} s"},
}


def _is_language(value: object) -> TypeGuard[Lang]:
    return value in LANGUAGES


def parameters(entry: Entry) -> set[str]:
    """The names of the parameters an entry uses (every form of a plural together)."""
    templates = (entry.one, entry.other) if isinstance(entry, Plural) else (entry,)
    return {name for template in templates for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True, slots=True)
class Terms:
    """Words (the ones a message was struck for), quoted as each language quotes them, comma-separated."""

    words: tuple[str, ...]

    def render(self, lang: Lang) -> str:
        return ", ".join(translate(lang, "list.term", term=word) for word in self.words)


@dataclass(frozen=True, slots=True)
class Text:
    """A catalog text not yet in any language: its id and its parameters (numbers, names, :class:`Terms`,
    other Texts)."""

    id: str
    params: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if self.id not in CATALOG:
            raise KeyError(f"no text {self.id!r} in the catalog")

    def template(self, lang: Lang) -> str:
        entry = CATALOG[self.id][lang]
        return entry.form(dict(self.params)[entry.count]) if isinstance(entry, Plural) else entry

    def render(self, lang: Lang) -> str:
        """The text in ``lang``."""
        values = {name: _localized(value, lang) for name, value in self.params}
        return self.template(lang).format_map(values)

    def children(self, lang: Lang) -> list[TagChild]:
        """The text in ``lang`` as tag children: parameters that are tags stay tags, in the language's order."""
        values = dict(self.params)
        out: list[TagChild] = []
        for literal, name, _, _ in string.Formatter().parse(self.template(lang)):
            if literal:
                out.append(literal)
            if name:
                value = values[name]
                out.append(_localized(value, lang))  # type: ignore[arg-type]
        return out


def _localized(value: object, lang: Lang) -> object:
    return value.render(lang) if isinstance(value, Text | Terms) else value


def text(text_id: str, **params: object) -> Text:
    """The catalog text ``text_id`` with ``params``."""
    return Text(text_id, tuple(params.items()))


def translate(lang: Lang, text_id: str, **params: object) -> str:
    """The catalog text ``text_id`` in ``lang``."""
    return text(text_id, **params).render(lang)


# -- choosing a person's language ----------------------------------------------------------------


def coerce(value: object) -> Lang:
    """``value`` if it is a language of the UI, else the default."""
    return value if _is_language(value) else DEFAULT_LANGUAGE


def negotiate(accept_language: str | None) -> Lang:
    """The UI's language for an ``Accept-Language`` header: Spanish when the browser prefers Spanish
    (any ``es-*``) to English, else English; anything unreadable is English."""
    ranked: list[tuple[float, int, Lang]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, rest = item.strip().partition(";")
        quality = 1.0
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if _is_language(primary) and 0 < quality <= 1:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def choose(headers: Mapping[str, str], cookies: Mapping[str, str]) -> Lang:
    """The language of a request: the person's earlier choice (the cookie), else the browser's preference."""
    chosen = cookies.get(COOKIE)
    return chosen if _is_language(chosen) else negotiate(headers.get("accept-language"))
