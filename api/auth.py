"""Who is speaking: signed session tokens, the live sessions that hold names (a SQLite store every API
process on the host shares), and the moderators' token. README "Trying the API by hand" has the rules.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, current_app, request
from itsdangerous import BadSignature, URLSafeSerializer

from api.errors import ApiError
from config import contract

TOKEN_SALT = "chat-session"


def load_secret(data_dir: Path) -> str:
    """A secret generated once and kept in DATA_DIR/secret_key (mode 0600), for when CHAT_SECRET_KEY is not set."""
    path = data_dir / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # generated before, or by another API process just now
        for _ in range(50):
            secret = path.read_text().strip()
            if secret:
                return secret
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty: delete it and restart the API") from None
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


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


class EndedStamp:
    """8 bytes in a file that every API process maps: ending a session anywhere changes them, so a
    process knows when a session it found live may have ended since. Reading is a memory read: no
    system call, no SQLite, and the GIL is kept (each release is a thread switch under load)."""

    SIZE = 8

    def __init__(self, path: Path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:  # new: another process doing the same at once is harmless
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        return self._map[: self.SIZE]

    def change(self) -> None:
        self._map[: self.SIZE] = secrets.token_bytes(self.SIZE)


@dataclass(frozen=True)
class _Checked:
    """A session SQLite said was live, the stamp read before asking, and when it needs renewing."""

    session: Session
    stamp: bytes
    renew_at: float


class SessionStore:
    """One row per name held by a live (or expired, not yet replaced) session."""

    MAX_REMEMBERED = 100_000  # sessions remembered as live; past that the memory starts afresh

    def __init__(self, path: Path, ttl_s: float, renew_after_s: float = 60.0):
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.renew_after_s = min(renew_after_s, ttl_s / 2)
        self._local = threading.local()
        self._live: dict[tuple[str, str], _Checked] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._ended = EndedStamp(self.path.with_name(self.path.name + ".ended"))
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (author TEXT PRIMARY KEY, session_id TEXT NOT NULL, "
                "created_at REAL NOT NULL, expires_at REAL NOT NULL)"
            )

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:  # one connection per thread: sqlite3 connections are not shared across threads
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def open(self, author: str) -> Session:
        """A new session holding `author`; NameInUse while another live session holds it."""
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT expires_at FROM sessions WHERE author = ?", (author,)).fetchone()
            if row and row[0] > now:
                raise NameInUse(author, row[0])
            session = Session(author, secrets.token_urlsafe(16), now + self.ttl_s)
            db.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                (author, session.session_id, now, session.expires_at),
            )
            db.execute("COMMIT")
            return session
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def touch(self, author: str, session_id: str) -> Session | None:
        """The live session, renewed when used; None when it ended, expired or was replaced.

        Without asking SQLite while this process found it live, no session has ended anywhere since
        and it is not yet due for renewal: until then it can neither expire nor be replaced (a name
        is only taken over from an expired session)."""
        now = time.time()
        stamp = self._ended.read()  # before the query: a session ended after it is asked about again
        checked = self._live.get((author, session_id))
        if checked is not None and checked.stamp == stamp and now < checked.renew_at:
            return checked.session
        session = self._touch_db(author, session_id, now)
        if session is None:
            self._live.pop((author, session_id), None)
        else:
            if len(self._live) >= self.MAX_REMEMBERED:
                self._live.clear()
            renew_at = session.expires_at - self.ttl_s + self.renew_after_s
            self._live[(author, session_id)] = _Checked(session, stamp, renew_at)
        return session

    def _touch_db(self, author: str, session_id: str, now: float) -> Session | None:
        db = self._db()
        row = db.execute(
            "SELECT expires_at FROM sessions WHERE author = ? AND session_id = ?", (author, session_id)
        ).fetchone()
        if row is None or row[0] <= now:
            return None
        expires_at = row[0]
        if expires_at - now < self.ttl_s - self.renew_after_s:  # renew at most once a minute per session
            expires_at = now + self.ttl_s
            db.execute(
                "UPDATE sessions SET expires_at = ? WHERE author = ? AND session_id = ?",
                (expires_at, author, session_id),
            )
        return Session(author, session_id, expires_at)

    def close(self, author: str, session_id: str) -> bool:
        cursor = self._db().execute("DELETE FROM sessions WHERE author = ? AND session_id = ?", (author, session_id))
        self._live.pop((author, session_id), None)
        self._ended.change()  # after the DELETE: every process asks SQLite again before trusting a session
        return cursor.rowcount > 0

    def live_count(self) -> int:
        return self._db().execute("SELECT count(*) FROM sessions WHERE expires_at > ?", (time.time(),)).fetchone()[0]


class Auth:
    MAX_VERIFIED = 100_000  # tokens remembered as verified; past that the memory starts afresh

    def __init__(self, store: SessionStore, secret: str, admin_token: str):
        self.store = store
        self.admin_token = admin_token
        self._signer = URLSafeSerializer(secret, salt=TOKEN_SALT, signer_kwargs={"digest_method": hashlib.sha256})
        self._verified: dict[str, tuple[str, str]] = {}

    def issue(self, author: str) -> tuple[str, Session]:
        session = self.store.open(author)
        return self._signer.dumps({"a": author, "s": session.session_id}), session

    def claims(self, token: str) -> tuple[str, str]:
        """(author, session id) a token signed by this API names; 401 for any other token. A token's
        signature never changes meaning, so each is checked once."""
        claims = self._verified.get(token)
        if claims is not None:
            return claims
        try:
            payload = self._signer.loads(token)
        except BadSignature:
            raise unauthorized("the token is not one this API issued; sign in again with POST /sessions") from None
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("a"), str)
            or not isinstance(payload.get("s"), str)
        ):
            raise unauthorized("the token is not one this API issued; sign in again with POST /sessions")
        if len(self._verified) >= self.MAX_VERIFIED:
            self._verified.clear()
        claims = self._verified[token] = (payload["a"], payload["s"])
        return claims

    def session_for(self, token: str) -> Session:
        session = self.store.touch(*self.claims(token))
        if session is None:
            raise unauthorized("your session has ended or expired; sign in again with POST /sessions")
        return session

    def is_admin(self, token: str) -> bool:
        return bool(self.admin_token) and hmac.compare_digest(token.encode(), self.admin_token.encode())


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="chat"'})


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthorized("sign in first: POST /sessions, then send Authorization: Bearer <token>")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 4096:
        raise unauthorized("the Authorization header must be `Bearer <token>`")
    return token.strip()


def get_auth() -> Auth:
    return current_app.extensions["chat_auth"]


def current_session() -> Session:
    """The session of this request's bearer token (401 without a live one)."""
    return get_auth().session_for(bearer_token())


def require_admin() -> None:
    auth = get_auth()
    if not auth.admin_token:
        raise ApiError(403, "moderator actions are switched off: start the API with CHAT_ADMIN_TOKEN set")
    if not auth.is_admin(bearer_token()):
        raise ApiError(403, "this needs the moderators' token (CHAT_ADMIN_TOKEN)")


def user_or_admin(author: str) -> None:
    """Let the request through for `author`'s own session or a moderator; else 401/403."""
    auth = get_auth()
    token = bearer_token()
    if auth.is_admin(token):
        return
    session = auth.session_for(token)
    if session.author != author:
        raise ApiError(403, f"signed in as {session.author!r}: you can only read your own notices")


def init_app(app: Flask) -> None:
    data_dir = Path(app.config["DATA_DIR"])
    store = SessionStore(
        app.config.get("SESSIONS_DB") or data_dir / "run" / "sessions.sqlite", ttl_s=app.config["SESSION_TTL_S"]
    )
    app.extensions["chat_auth"] = Auth(
        store, app.config.get("SECRET_KEY") or load_secret(data_dir), app.config["ADMIN_TOKEN"]
    )
