"""Who is speaking: signed session tokens, the live sessions that hold names (settled through the Kafka
topic `chat_sessions`, which every API process reads whole and follows), and the moderators: a named moderator's
token (POST /moderators/sign_in, api/moderators.py) or the shared CHAT_ADMIN_TOKEN. README "Trying the API by
hand" and "Moderators" have the rules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from flask import Flask, current_app, has_request_context, request
from itsdangerous import BadSignature, URLSafeSerializer

from api.errors import ApiError
from api.tail import Follower
from config import contract, settings
from config.private import create_private, private_dir, read_private

log = logging.getLogger(__name__)

TOKEN_SALT = "chat-session"
MODERATOR_SALT = "chat-moderator"  # a moderator's token is no session token, nor the other way round
MODERATOR_TOKEN_TTL_S = 8 * 3600.0  # a shift: then the moderator signs in again


def load_secret(data_dir: Path) -> str:
    """A secret generated once and kept in DATA_DIR/secret_key (mode 0600), for when CHAT_SECRET_KEY is not set;
    NotPrivate (naming the file and the fix) when the file is a link, another user's, or readable by others."""
    path = private_dir(data_dir) / "secret_key"
    if not create_private(path, secrets.token_urlsafe(48)):  # generated before, or by another API process now
        for _ in range(50):
            secret = read_private(path).strip()
            if secret:
                return secret
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty: delete it and restart the API")
    return read_private(path).strip()


def parse_position(text: str) -> tuple[int, int] | None:
    partition, _, offset = text.partition(":")
    return (int(partition), int(offset)) if partition.isdigit() and offset.isdigit() and len(text) < 40 else None


def format_utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime(contract.TIMESTAMP_FORMAT)


class NameInUse(Exception):
    def __init__(self, author: str, expires_at: float):
        super().__init__(author)
        self.author = author
        self.expires_at = expires_at


@dataclass(frozen=True)
class Session:
    author: str
    session_id: str
    expires_at: float
    claimed_at: tuple[int, int] | None = None  # where its claim is in `chat_sessions` (partition, offset)


@dataclass(frozen=True)
class Holder:
    """The live (or expired, not yet purged) session that holds a name, as the log of `chat_sessions` says."""

    session_id: str
    expires_at: float
    renewed_at: float  # when its claim or latest renewal was made


class SessionBoard(Follower):
    """Who holds which name: `chat_sessions` read whole and followed, in the log's order, which is the same
    for every API process. A claim wins a name that is free (or held by an expired session) at the claim's
    time, so of two racing claims the first in the log wins on every host; a renewal extends the holder's
    expiry; an end frees the name; a tombstone (written for a long-expired session) forgets it."""

    topic = contract.TOPIC_SESSIONS

    def __init__(self) -> None:
        super().__init__()
        self.holders: dict[str, Holder] = {}
        # names this process tombstoned: a tombstone that finds a live holder (a claim got in first) is
        # answered with a renewal, so compaction keeps the holder as the name's latest record
        self.tombstoned: set[str] = set()
        self.republish: list[tuple[str, Holder]] = []

    def handle(self, record) -> None:
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        self.apply(key, record.value, record.partition, record.offset, record.timestamp / 1000)

    def apply(self, author: str | None, value: bytes | None, partition: int, offset: int, at: float) -> None:
        with self._cond:
            self.positions[partition] = max(self.positions.get(partition, 0), offset + 1)
            if author is not None:
                self._apply(author, value, at)
            self.changed()

    def _apply(self, author: str, value: bytes | None, at: float) -> None:
        holder = self.holders.get(author)
        if value is None:  # a tombstone: forget an expired holder, never a live one
            if holder is not None and holder.expires_at <= at:
                del self.holders[author]
            elif holder is not None and author in self.tombstoned:
                self.republish.append((author, holder))
            self.tombstoned.discard(author)
            return
        try:
            record = json.loads(value)
            op, session_id = record["op"], record["session"]
            when, expires_at = float(record["at"]), float(record["expires_at"])
        except (ValueError, KeyError, TypeError):
            log.warning("sessions: skipping a record of %s that is not a session record", self.topic)
            return
        if op == "claim" and (holder is None or holder.expires_at <= when):
            self.holders[author] = Holder(session_id, expires_at, when)
        elif op == "renew" and holder is not None and holder.session_id == session_id and holder.expires_at > when:
            self.holders[author] = Holder(session_id, max(holder.expires_at, expires_at), when)
        elif op == "end" and holder is not None and holder.session_id == session_id:
            del self.holders[author]

    def holder(self, author: str) -> Holder | None:
        return self.holders.get(author)

    def past(self, partition: int, offset: int) -> bool:
        """Whether this process has read the record at (partition, offset)."""
        return self.positions.get(partition, 0) > offset

    def sizes(self) -> dict:
        return {"session_holders": len(self.holders)}


class KafkaSessionLog:
    """Session records go to `chat_sessions` through the process's producer (acks=all)."""

    def __init__(self, producer):
        self.producer = producer

    def append(self, author: str, record: dict | None, wait: bool = True) -> tuple[int, int] | None:
        return self.producer.publish(contract.TOPIC_SESSIONS, author, record, [], what="session record", wait=wait)


class SessionLog(Protocol):
    """Where session records go: `chat_sessions` (KafkaSessionLog); tests without a broker pass a stand-in
    that also delivers to the boards attached (tests/api/session_log.py)."""

    def append(self, author: str, record: dict | None, wait: bool = True) -> tuple[int, int] | None: ...


class SessionStore:
    """Sessions that hold names, shared by every API process and host through `chat_sessions`."""

    PURGE_EVERY_S = 10.0

    def __init__(
        self,
        board: SessionBoard,
        log: SessionLog,
        ttl_s: float,
        renew_after_s: float = 60.0,
        settle_timeout_s: float = 10.0,
    ):
        self.board = board
        self.log = log
        self.ttl_s = ttl_s
        self.renew_after_s = min(renew_after_s, ttl_s / 2)
        self.settle_timeout_s = settle_timeout_s
        self.purge_grace_s = max(60.0, ttl_s)  # a renewal in flight when it expired still finds it
        self._renewing: dict[tuple[str, str], float] = {}
        self._next_purge = 0.0
        board.idle = self.purge_when_due

    def _settled(self, where: tuple[int, int] | None) -> None:
        """Wait until this process has read its own record at `where`: the log's order has spoken."""
        if where is None or not self.board.wait_until(lambda: self.board.past(*where), self.settle_timeout_s):
            raise ApiError(503, "sessions_log_timeout")

    def open(self, author: str) -> Session:
        """A new session holding `author`; NameInUse while another live session holds it."""
        now = time.time()
        holder = self.board.holder(author)
        if holder is not None and holder.expires_at > now:
            raise NameInUse(author, holder.expires_at)
        session = Session(author, secrets.token_urlsafe(16), now + self.ttl_s)
        claim = {"op": "claim", "session": session.session_id, "at": now, "expires_at": session.expires_at}
        where = self.log.append(author, claim)
        self._settled(where)
        holder = self.board.holder(author)
        if holder is None or holder.session_id != session.session_id:
            raise NameInUse(author, holder.expires_at if holder else now)
        return replace(session, claimed_at=where)

    def touch(self, author: str, session_id: str) -> Session | None:
        """The live session, renewed at most every `renew_after_s` while in use; None when it ended,
        expired or never held the name."""
        holder = self.board.holders.get(author)
        if holder is None or holder.session_id != session_id:
            return None
        now = time.time()
        if holder.expires_at <= now:
            return None
        if now - holder.renewed_at >= self.renew_after_s and now - self._renewing.get((author, session_id), 0) > min(
            5.0, self.renew_after_s
        ):
            self._renewing[(author, session_id)] = now
            renewal = {"op": "renew", "session": session_id, "at": now, "expires_at": now + self.ttl_s}
            try:
                self.log.append(author, renewal, wait=False)
            except ApiError:
                pass  # Kafka is away: the session lives on until its expiry, renewed by a later request
        return Session(author, session_id, holder.expires_at)

    def close(self, author: str, session_id: str) -> bool:
        holder = self.board.holder(author)
        if holder is None or holder.session_id != session_id:
            return False
        end = {"op": "end", "session": session_id, "at": time.time(), "expires_at": 0}
        self._settled(self.log.append(author, end))
        self._renewing.pop((author, session_id), None)
        return True

    def live_count(self) -> int:
        now = time.time()
        return sum(1 for h in list(self.board.holders.values()) if h.expires_at > now)

    def purge_when_due(self) -> None:
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + self.PURGE_EVERY_S
            self.purge(now)

    def purge(self, now: float) -> list[str]:
        """Forget the sessions expired longer than the grace ago, and tombstone them in the log."""
        expired = [a for a, h in list(self.board.holders.items()) if h.expires_at + self.purge_grace_s <= now]
        with self.board._cond:
            for author in expired:
                self.board.tombstoned.add(author)
            republish, self.board.republish = self.board.republish, []
        for author in expired:
            try:
                self.log.append(author, None, wait=False)
            except ApiError:
                return expired  # Kafka is away: the next purge tries again
        for author, holder in republish:
            renewal = {"op": "renew", "session": holder.session_id, "at": now, "expires_at": holder.expires_at}
            try:
                self.log.append(author, renewal, wait=False)
            except ApiError:
                pass
        self._renewing = {k: t for k, t in self._renewing.items() if now - t < 60}
        return expired

    def sizes(self) -> dict:
        return {**self.board.sizes(), "renewals_in_flight": len(self._renewing)}


class Lockout:
    """Keys locked out until a time (`_locked`), answered with a 429 and Retry-After (`check`); a subclass decides
    when a key is locked."""

    def __init__(self, clock, code: str):
        self.clock, self.code = clock, code  # the 429's error code
        self._misses: dict[str, list[float]] = {}  # key → its recent miss times
        self._locked: dict[str, float] = {}  # key → until
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """429 while `key` is locked out."""
        with self._lock:
            left = self._locked.get(key, 0.0) - self.clock()
            if left <= 0:
                self._locked.pop(key, None)
                return
        seconds = math.ceil(left)
        raise ApiError(429, self.code, headers={"Retry-After": str(seconds)}, seconds=seconds)


class GuessThrottle(Lockout):
    """Wrong moderators' tokens and secrets (POST /moderators/sign_in) per client address: after `limit` of them
    within `window_s`, the address gets a 429 (with Retry-After) on every moderator call and sign-in for
    `lockout_s`, the right token included (else the answer would tell a guesser when they got it). A right
    token in time is answered at once and forgets the misses. Each API process counts its own."""

    MAX_CLIENTS = 10_000  # addresses remembered; past that the oldest misses are forgotten

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        clock=time.monotonic,
        code: str = "admin_guesses_locked",
    ):
        super().__init__(clock, code)
        self.limit, self.window_s, self.lockout_s = limit, window_s, lockout_s

    def missed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._misses) >= self.MAX_CLIENTS and client not in self._misses:
                self._forget(now)
            misses = [t for t in self._misses.get(client, ()) if now - t < self.window_s] + [now]
            if len(misses) >= self.limit:
                self._locked[client] = now + self.lockout_s
                self._misses.pop(client, None)
            else:
                self._misses[client] = misses

    def hit(self, client: str) -> None:
        with self._lock:
            self._misses.pop(client, None)

    def _forget(self, now: float) -> None:
        self._misses = {c: m for c, m in self._misses.items() if now - m[-1] < self.window_s}
        if len(self._misses) >= self.MAX_CLIENTS:
            self._misses.clear()
        self._locked = {c: until for c, until in self._locked.items() if until > now}

    def sizes(self) -> dict:
        return {"admin_guess_clients": len(self._misses), "admin_guess_lockouts": len(self._locked)}


class Auth:
    MAX_VERIFIED = 100_000  # tokens remembered as verified; past that the memory starts afresh

    def __init__(
        self,
        store: SessionStore,
        secret: str,
        admin_token: str,
        guesses: GuessThrottle | None = None,
        moderators: Iterable[tuple[str, str]] = (),
        moderator_ttl_s: float = MODERATOR_TOKEN_TTL_S,
    ):
        """`moderators`: (name, argon2id hash of their secret) of CHAT_MODERATORS_FILE; CHAT_ADMIN_TOKEN, when
        set, is one more moderator, named settings.SHARED_MODERATOR."""
        problem = settings.admin_token_problem(admin_token)
        if problem:
            raise SystemExit(problem)
        self.store = store
        self.admin_token = admin_token
        self.moderators = dict(moderators)  # name → hash
        problem = settings.shared_moderator_problem(self.moderators, admin_token)
        if problem:
            raise SystemExit(problem)
        self.moderator_ttl_s = moderator_ttl_s
        self.guesses = guesses or GuessThrottle()
        self._signer = URLSafeSerializer(secret, salt=TOKEN_SALT, signer_kwargs={"digest_method": hashlib.sha256})
        self._moderator_signer = URLSafeSerializer(
            secret, salt=MODERATOR_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        # what a moderator's token must carry to stay good: a keyed digest of their secret's hash (or of the
        # shared token), so a changed secret, or a moderator taken out of the file, ends their tokens at restart
        key = secret.encode()
        credentials = {**self.moderators, **({settings.SHARED_MODERATOR: admin_token} if admin_token else {})}
        self._fingerprints = {
            name: hmac.new(key, credential.encode(), hashlib.sha256).hexdigest()[:32]
            for name, credential in credentials.items()
        }
        self._verified: dict[str, tuple[str, str]] = {}

    @property
    def moderation_on(self) -> bool:
        """Whether any moderator can act (CHAT_ADMIN_TOKEN or CHAT_MODERATORS_FILE set)."""
        return bool(self._fingerprints)

    def issue_moderator(self, name: str) -> tuple[str, float]:
        """A token for the moderator `name` (who has just proved their secret), and when it expires."""
        expires_at = time.time() + self.moderator_ttl_s
        return self._moderator_signer.dumps({"m": name, "f": self._fingerprints[name], "e": expires_at}), expires_at

    def moderator_of(self, token: str) -> str | None:
        """The moderator `token` speaks for: the shared CHAT_ADMIN_TOKEN's name, or the name in a moderator's
        token this API signed, unexpired, for a moderator still configured with the same secret; else None."""
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return settings.SHARED_MODERATOR
        if not self._fingerprints:
            return None
        try:
            claims = self._moderator_signer.loads(token)
        except BadSignature:
            return None
        if not isinstance(claims, dict):
            return None
        name, fingerprint, expires_at = claims.get("m"), claims.get("f"), claims.get("e")
        if not isinstance(name, str) or not isinstance(fingerprint, str) or not isinstance(expires_at, int | float):
            return None
        known = self._fingerprints.get(name)
        if known is None or not hmac.compare_digest(known, fingerprint) or expires_at <= time.time():
            return None
        return name

    def issue(self, author: str) -> tuple[str, Session]:
        session = self.store.open(author)
        claim = {"a": author, "s": session.session_id}
        if session.claimed_at is not None:  # another process may not have read that far yet: it will wait
            claim["p"] = f"{session.claimed_at[0]}:{session.claimed_at[1]}"
        return self._signer.dumps(claim), session

    def claims(self, token: str) -> tuple[str, str]:
        """(author, session id) a token signed by this API names; 401 for any other token. A token's
        signature never changes meaning, so each is checked once."""
        return self._claims(token)[:2]

    def unread_claim(self, token: str) -> tuple[int, int] | None:
        """Where the token's claim is in `chat_sessions`, when this process has not read that far yet (a
        session opened on another process or host a moment ago); None otherwise."""
        position = self._claims(token)[2]
        return position if position is not None and not self.store.board.past(*position) else None

    def _claims(self, token: str) -> tuple[str, str, tuple[int, int] | None]:
        claims = self._verified.get(token)
        if claims is not None:
            return claims
        try:
            payload = self._signer.loads(token)
        except BadSignature:
            raise unauthorized("token_unknown") from None
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("a"), str)
            or not isinstance(payload.get("s"), str)
        ):
            raise unauthorized("token_unknown")
        if len(self._verified) >= self.MAX_VERIFIED:
            self._verified.clear()
        position = parse_position(payload.get("p")) if isinstance(payload.get("p"), str) else None
        claims = self._verified[token] = (payload["a"], payload["s"], position)
        return claims

    def session_for(self, token: str, wait_s: float = 2.0) -> Session:
        """The live session of `token`; 401 without one. A session opened elsewhere a moment ago is waited
        for (up to `wait_s`) until this process has read its claim."""
        session = self.store.touch(*self.claims(token))
        if session is None and wait_s > 0 and (position := self.unread_claim(token)) is not None:
            self.store.board.wait_until(lambda: self.store.board.past(*position), wait_s)
            session = self.store.touch(*self.claims(token))
        if session is None:
            raise unauthorized("session_ended")
        return session

    def sizes(self) -> dict:
        return {**self.store.sizes(), "verified_tokens": len(self._verified), **self.guesses.sizes()}

    def is_signed(self, token: str) -> bool:
        """Whether `token` is a session token this API signed (whatever its session's state)."""
        try:
            self._claims(token)
        except ApiError:
            return False
        return True

    def moderator_attempt(self, token: str, client: str) -> str | None:
        """The moderator `token` speaks for (moderator_of), or None; a wrong one counts against `client`, which
        gets a 429 once it has missed too often (GuessThrottle)."""
        if not self.moderation_on:
            return None
        self.guesses.check(client)
        name = self.moderator_of(token)
        if name is not None:
            self.guesses.hit(client)
        else:
            self.guesses.missed(client)
        return name


def unauthorized(code: str) -> ApiError:
    return ApiError(401, code, headers={"WWW-Authenticate": 'Bearer realm="chat"'})


def bearer_token() -> str:
    return parse_bearer(request.headers.get("Authorization", ""))


def parse_bearer(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header value; 401 for anything else."""
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthorized("sign_in_first")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 4096:
        raise unauthorized("bad_authorization")
    return token.strip()


def get_auth() -> Auth:
    return current_app.extensions["chat_auth"]


def current_session() -> Session:
    """The session of this request's bearer token (401 without a live one)."""
    return get_auth().session_for(bearer_token())


def client_address() -> str:
    """The address this request came from (the balancer's, behind one)."""
    return (request.remote_addr if has_request_context() else None) or "?"


def require_moderator() -> str:
    """The name of the moderator this request's bearer token speaks for (recorded as `by` of their actions);
    403 for a chatter's session token (no guess: it is not counted) or a wrong token (counted: 429 past the
    guess limit), 401 without a token."""
    auth = get_auth()
    if not auth.moderation_on:
        raise ApiError(403, "moderation_off")
    token = bearer_token()
    if auth.is_signed(token):
        raise ApiError(403, "moderator_token_required")
    name = auth.moderator_attempt(token, client_address())
    if name is None:
        raise ApiError(403, "moderator_token_required")
    return name


def user_or_admin(author: str, token: str | None = None, auth: Auth | None = None, client: str | None = None) -> None:
    """Let the request through for `author`'s own session or a moderator; else 401/403 (429 for a client that
    has guessed the moderators' token wrong too often)."""
    auth = auth or get_auth()
    token = token if token is not None else bearer_token()
    client = client if client is not None else client_address()
    if not auth.is_signed(token) and auth.moderator_attempt(token, client) is not None:
        return
    session = auth.session_for(token)
    if session.author != author:
        raise ApiError(403, "own_notices_only", author=session.author)


def init_app(app: Flask) -> None:
    """Sessions on `chat_sessions` through the process's producer; a test passes SESSION_LOG (a stand-in shared
    by the apps that stand for API processes, tests/api/session_log.py) to run without a broker."""
    data_dir = Path(app.config["DATA_DIR"])
    board = SessionBoard()
    log_ = app.config.get("SESSION_LOG")
    if log_ is None:
        log_ = KafkaSessionLog(app.extensions["chat_producer"])
    else:
        log_.attach(board)
    store = SessionStore(board, log_, ttl_s=app.config["SESSION_TTL_S"])
    guesses = GuessThrottle(
        app.config.get("ADMIN_GUESS_LIMIT", 10),
        app.config.get("ADMIN_GUESS_WINDOW_S", 60.0),
        app.config.get("ADMIN_LOCKOUT_S", 60.0),
    )
    moderators = app.config.get("MODERATORS")  # a test's (name, hash) pairs; else CHAT_MODERATORS_FILE's
    if moderators is None:
        moderators = settings.load_moderators(app.config.get("MODERATORS_FILE"), app.config["ADMIN_TOKEN"])
    app.extensions["chat_auth"] = Auth(
        store,
        app.config.get("SECRET_KEY") or load_secret(data_dir),
        app.config["ADMIN_TOKEN"],
        guesses,
        moderators,
        app.config.get("MODERATOR_TOKEN_TTL_S", MODERATOR_TOKEN_TTL_S),
    )
