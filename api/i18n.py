"""The API's error texts in Spanish and English, and the language a request asks for (Accept-Language).

Every error has a stable `code` (what a client branches on) and a text per language from `ERRORS`;
notices are worded from their kind and numbers by `config.contract.notice_text`. README "Languages".
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from config import contract

LANGUAGES = contract.LANGUAGES
DEFAULT_LANGUAGE = contract.DEFAULT_LANGUAGE
# what an answer that depends on the request's language carries, beside its Content-Language
VARY = "Accept-Language"

ERRORS: dict[str, dict[str, str]] = {
    "en": {
        # the request itself
        "query_not_utf8": "the query string is not valid UTF-8 (percent-encode it)",
        "not_found": "no such endpoint",
        "method_not_allowed": "method not allowed here",
        "body_too_large": "request body too large (at most {limit} bytes)",
        "http_error": "the request cannot be served (HTTP {http_status})",
        "internal": "internal error; it has been logged",
        "host_required": "send a Host header naming this API",
        "host_not_allowed": "the Host {host!r} is not one this API serves (CHAT_API_ALLOWED_HOSTS)",
        "connection_limit": "the API is at its connection limit (CHAT_API_MAX_CONNECTIONS); try again shortly",
        "request_timeout": "the request did not arrive within {seconds:g}s",
        # JSON bodies and parameters
        "json_required": "send JSON with Content-Type: application/json",
        "json_invalid": "body is not valid JSON (UTF-8)",
        "json_too_deep": "body is not valid JSON (UTF-8): nested too deeply",
        "body_not_object": "body must be a JSON object {{{fields}}}",
        "unknown_fields": "unknown field(s): {fields}",
        "field_required": "{field} is required",
        "field_not_string": "{field} must be a string",
        "field_empty": "{field} must not be empty",
        "field_too_long": "{field} is too long ({length} characters, at most {maximum})",
        "author_control": contract.AUTHOR_PROBLEMS["control"],
        "author_forbidden": contract.AUTHOR_PROBLEMS["forbidden"],
        "author_invisible": contract.AUTHOR_PROBLEMS["invisible"],
        "data_control": "{field} must not contain control characters",
        "wait_not_number": "wait must be a number of seconds",
        "wait_out_of_range": "wait must be between 0 and {maximum:g} seconds",
        "limit_out_of_range": "limit must be a whole number from 1 to {maximum}",
        "bad_cursor": "after must be a cursor returned by {source}",
        "tokens_invalid": "tokens must be a non-empty list of session tokens (strings)",
        "tokens_too_many": "tokens holds {count} tokens, at most {maximum}",
        "poll_after_invalid": "after must be a cursor (a string) returned by POST /notices/poll",
        "poll_wait_invalid": "wait must be a number of seconds between 0 and {maximum:g}",
        # sessions and rights
        "sign_in_first": "sign in first: POST /sessions, then send Authorization: Bearer <token>",
        "bad_authorization": "the Authorization header must be `Bearer <token>`",
        "token_unknown": "the token is not one this API issued; sign in again with POST /sessions",
        "session_ended": "your session has ended or expired; sign in again with POST /sessions",
        "name_in_use": "the name {author!r} is in use by another session until {until} UTC (or until it signs out); "
        "choose another name",
        "cannot_send_as": "signed in as {author!r}: you cannot send as {claimed!r}",
        "cannot_read_as": "signed in as {author!r}: you cannot read as {claimed!r}",
        "own_notices_only": "signed in as {author!r}: you can only read your own notices",
        "moderation_off": "moderator actions are switched off: start the API with CHAT_MODERATORS_FILE or "
        "CHAT_ADMIN_TOKEN set",
        "moderator_token_required": "this needs a moderator's token (POST /moderators/sign_in) or CHAT_ADMIN_TOKEN",
        "bad_moderator_credentials": "wrong moderator name or secret",
        "admin_guesses_locked": "too many wrong moderators' tokens or secrets from this address; try again in {seconds} s",
        # accounts
        "password_too_short": "{field} is too short ({length} characters, at least {minimum})",
        "password_too_long": "{field} is too long ({length} characters, at most {maximum})",
        "name_taken": "the name {wanted!r}, or one that looks like it, is taken; choose another name",
        "bad_credentials": "wrong name or password",
        "too_many_attempts": "too many attempts; try again in {seconds} s",
        "address_held": "sign-ups from this address are held after a block here; try again in {seconds} s",
        "password_required": "password is required: sign in with your account's name and password "
        "(this chat has no guest names)",
        "no_hold": "no sign-up hold on the address {address!r}",
        "too_many_polls_session": "too many long-polls open for this session (at most {limit}); wait for one to answer",
        "too_many_polls_client": "too many long-polls open from this address (at most {limit}); wait for one to answer",
        "rate_limited": "not sent: you are sending too fast (at most {limit} messages every {window:g} s); "
        "you can send again in {seconds} s",
        "slow_mode": "not sent: slow mode is on (one message every {interval} s); you can send again in {seconds} s",
        "slow_mode_invalid": "seconds must be a whole number from 0 (slow mode off) to {maximum}",
        # users and moderation
        "unknown_user": "unknown user {author!r}: no message from them has been recorded yet",
        "blocked": "{author} is blocked after {strikes} strikes for profanity: "
        "blocked users can neither send nor read messages",
        "blocked_since": "{author} is blocked since {since} UTC after {strikes} strikes for profanity: "
        "blocked users can neither send nor read messages",
        # Kafka
        "kafka_unavailable": "Kafka is unavailable at {bootstrap}; try again shortly",
        "kafka_refused_message": "Kafka did not accept the message (it was not sent); try again",
        "kafka_refused_action": "Kafka did not accept the action (it was not sent); try again",
        "kafka_refused_session": "Kafka did not accept the session (it was not sent); try again",
        "kafka_refused_account": "Kafka did not accept the account record (it was not saved); try again",
        "accounts_log_timeout": "the accounts log (Kafka) did not answer in time; try again shortly",
        "sessions_log_timeout": "the sessions log (Kafka) did not answer in time; try again shortly",
    },
    "es": {
        "query_not_utf8": "la cadena de consulta no es UTF-8 válido (codifícala con %)",
        "not_found": "no existe ese punto de acceso",
        "method_not_allowed": "método no permitido aquí",
        "body_too_large": "el cuerpo de la petición es demasiado grande (como máximo {limit} bytes)",
        "http_error": "no se puede atender la petición (HTTP {http_status})",
        "internal": "error interno; ha quedado registrado",
        "host_required": "envía una cabecera Host que nombre esta API",
        "host_not_allowed": "esta API no sirve el Host {host!r} (CHAT_API_ALLOWED_HOSTS)",
        "connection_limit": "la API está en su límite de conexiones (CHAT_API_MAX_CONNECTIONS); "
        "inténtalo de nuevo en breve",
        "request_timeout": "la petición no llegó en {seconds:g} s",
        "json_required": "envía JSON con Content-Type: application/json",
        "json_invalid": "el cuerpo no es JSON válido (UTF-8)",
        "json_too_deep": "el cuerpo no es JSON válido (UTF-8): anidado demasiado hondo",
        "body_not_object": "el cuerpo debe ser un objeto JSON {{{fields}}}",
        "unknown_fields": "campo(s) desconocido(s): {fields}",
        "field_required": "{field} es obligatorio",
        "field_not_string": "{field} debe ser una cadena de texto",
        "field_empty": "{field} no puede estar vacío",
        "field_too_long": "{field} es demasiado largo ({length} caracteres, como máximo {maximum})",
        "author_control": "{field} no puede contener caracteres de control ni saltos de línea",
        "author_forbidden": "{field} no puede contener '/' (nombra a una persona en URL como /users/<author>)",
        "author_invisible": "{field} debe tener caracteres visibles y ningún carácter de dirección del texto "
        "ni de anchura cero",
        "data_control": "{field} no puede contener caracteres de control",
        "wait_not_number": "wait debe ser un número de segundos",
        "wait_out_of_range": "wait debe estar entre 0 y {maximum:g} segundos",
        "limit_out_of_range": "limit debe ser un número entero de 1 a {maximum}",
        "bad_cursor": "after debe ser un cursor devuelto por {source}",
        "tokens_invalid": "tokens debe ser una lista no vacía de tokens de sesión (cadenas)",
        "tokens_too_many": "tokens contiene {count} tokens, como máximo {maximum}",
        "poll_after_invalid": "after debe ser un cursor (una cadena) devuelto por POST /notices/poll",
        "poll_wait_invalid": "wait debe ser un número de segundos entre 0 y {maximum:g}",
        "sign_in_first": "inicia sesión primero: POST /sessions, y después envía Authorization: Bearer <token>",
        "bad_authorization": "la cabecera Authorization debe ser `Bearer <token>`",
        "token_unknown": "esta API no emitió ese token; vuelve a iniciar sesión con POST /sessions",
        "session_ended": "tu sesión ha terminado o caducado; vuelve a iniciar sesión con POST /sessions",
        "name_in_use": "otra sesión usa el nombre {author!r} hasta las {until} UTC (o hasta que la cierre); "
        "elige otro nombre",
        "cannot_send_as": "has iniciado sesión como {author!r}: no puedes enviar como {claimed!r}",
        "cannot_read_as": "has iniciado sesión como {author!r}: no puedes leer como {claimed!r}",
        "own_notices_only": "has iniciado sesión como {author!r}: solo puedes leer tus propios avisos",
        "moderation_off": "las acciones de moderación están desactivadas: arranca la API con CHAT_MODERATORS_FILE "
        "o CHAT_ADMIN_TOKEN",
        "moderator_token_required": "esto necesita un token de moderación (POST /moderators/sign_in) "
        "o CHAT_ADMIN_TOKEN",
        "bad_moderator_credentials": "nombre o secreto de moderación incorrectos",
        "admin_guesses_locked": "demasiados tokens o secretos de moderación erróneos desde esta dirección; inténtalo de nuevo en {seconds} s",
        "password_too_short": "{field} es demasiado corta ({length} caracteres, como mínimo {minimum})",
        "password_too_long": "{field} es demasiado larga ({length} caracteres, como máximo {maximum})",
        "name_taken": "el nombre {wanted!r}, u otro que se le parece, ya está cogido; elige otro nombre",
        "bad_credentials": "nombre o contraseña incorrectos",
        "too_many_attempts": "demasiados intentos; inténtalo de nuevo en {seconds} s",
        "address_held": "los registros desde esta dirección están retenidos tras un bloqueo aquí; "
        "inténtalo de nuevo en {seconds} s",
        "password_required": "password es obligatoria: inicia sesión con el nombre y la contraseña de tu cuenta "
        "(este chat no admite nombres de invitado)",
        "no_hold": "no hay retención de registros para la dirección {address!r}",
        "too_many_polls_session": "demasiadas esperas abiertas para esta sesión (como máximo {limit}); "
        "espera a que responda una",
        "too_many_polls_client": "demasiadas esperas abiertas desde esta dirección (como máximo {limit}); "
        "espera a que responda una",
        "rate_limited": "no enviado: estás enviando demasiado rápido (como máximo {limit} mensajes cada {window:g} s); "
        "podrás volver a enviar en {seconds} s",
        "slow_mode": "no enviado: el modo lento está activado (un mensaje cada {interval} s); "
        "podrás volver a enviar en {seconds} s",
        "slow_mode_invalid": "seconds debe ser un número entero de 0 (modo lento desactivado) a {maximum}",
        "unknown_user": "persona desconocida {author!r}: aún no consta ningún mensaje suyo",
        "blocked": "{author} está bloqueado tras {strikes} faltas por lenguaje malsonante: "
        "quien está bloqueado no puede enviar ni leer mensajes",
        "blocked_since": "{author} está bloqueado desde el {since} UTC tras {strikes} faltas por lenguaje malsonante: "
        "quien está bloqueado no puede enviar ni leer mensajes",
        "kafka_unavailable": "Kafka no está disponible en {bootstrap}; inténtalo de nuevo en breve",
        "kafka_refused_message": "Kafka no aceptó el mensaje (no se ha enviado); inténtalo de nuevo",
        "kafka_refused_action": "Kafka no aceptó la acción (no se ha enviado); inténtalo de nuevo",
        "kafka_refused_session": "Kafka no aceptó la sesión (no se ha enviado); inténtalo de nuevo",
        "kafka_refused_account": "Kafka no aceptó el registro de la cuenta (no se ha guardado); inténtalo de nuevo",
        "accounts_log_timeout": "el registro de cuentas (Kafka) no respondió a tiempo; inténtalo de nuevo en breve",
        "sessions_log_timeout": "el registro de sesiones (Kafka) no respondió a tiempo; inténtalo de nuevo en breve",
    },
}
CODES = frozenset(ERRORS[DEFAULT_LANGUAGE])


def parameters(template: str) -> set[str]:
    """The names of the parameters a template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def error_text(code: str, language: str, params: Mapping[str, object]) -> str:
    """The text of error `code` in `language` (the default for a language the API does not speak)."""
    catalog = ERRORS.get(language, ERRORS[DEFAULT_LANGUAGE])
    return catalog[code].format_map(params)


def negotiate(accept_language: str | None) -> str:
    """The language for an Accept-Language header (RFC 9110 12.5.4): of the languages spoken here, the one
    the client ranks highest (`es-MX` is Spanish; `*` is any, taken as the default), ties in the order listed;
    q=0 and unreadable entries count for nothing. The default (English) when nothing listed is spoken here."""
    best: tuple[float, str] | None = None
    for item in (accept_language or "")[:1024].split(","):
        tag, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                quality = _quality(value.strip())
        primary = tag.lower().split("-")[0]
        primary = DEFAULT_LANGUAGE if primary == "*" else primary
        if primary in LANGUAGES and quality > 0 and (best is None or quality > best[0]):
            best = (quality, primary)
    return best[1] if best else DEFAULT_LANGUAGE


def _quality(value: str) -> float:
    """A q-value (0 to 1, at most three decimals); -1 for anything else, which drops its language."""
    if not value or len(value) > 5 or not all(ch.isdigit() or ch == "." for ch in value) or not value.isascii():
        return -1.0
    try:
        quality = float(value)
    except ValueError:
        return -1.0
    return quality if 0 <= quality <= 1 else -1.0


def language_headers(language: str) -> dict[str, str]:
    """The headers of an answer whose text is in `language`."""
    return {"Content-Language": language, "Vary": VARY}
