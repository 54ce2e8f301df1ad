"""Accounts: sign-up with a name and a password (POST /accounts), one name per person however it is spelled
(api/names.py keys), and the sign-up holds on the addresses a blocked user signed in from (GET/DELETE
/admin/holds). The store is the Kafka topic `chat_accounts`, which every API process reads whole and follows,
as the sessions are. README "Accounts" has the rules.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Flask, current_app, request

from api.auth import Lockout, client_address, format_utc, require_moderator
from api.errors import ApiError
from api.names import canonical_key, name_keys
from api.tail import Follower
from api.validation import clean_author, has_surrogates, json_object
from config import contract

log = logging.getLogger(__name__)

bp = Blueprint("accounts", __name__)

MAX_ADDRESS_CHARS = 100


@dataclass(frozen=True)
class Account:
    author: str  # the name as registered: what sessions carry and readers see
    account_id: str
    password_hash: str
    keys: tuple[str, ...]
    created_at: float


class AccountBoard(Follower):
    """`chat_accounts` read whole and followed, in the log's order (one partition: every record has the key
    contract.ACCOUNTS_KEY), the same for every API process. A sign-up is granted when none of its keys (and
    not its spelling) belongs to an account granted before it in the log, so of two racing sign-ups for one
    key the first in the log wins on every process and host."""

    topic = contract.TOPIC_ACCOUNTS
    MAX_SEEN = 200_000  # (address, author) pairs remembered; past that the oldest sign-ins are forgotten
    PRUNE_EVERY_S = 60.0

    def __init__(self, seen_retention_s: float = 30 * 86_400.0, clock=time.time) -> None:
        super().__init__()
        self.accounts: dict[str, Account] = {}  # registered spelling → account
        self.by_key: dict[str, str] = {}  # key → registered spelling
        self.granted: dict[str, bool] = {}  # sign-up id → granted or not
        self.seen: dict[str, dict[str, float]] = {}  # client address → {author: latest signed in from it at}
        self.seen_pairs = 0
        self.seen_retention_s = seen_retention_s
        self.lifted: dict[str, float] = {}  # client address → the latest moderator's lift of its hold
        self.announced: set[str] = set()  # accounts the ledger has been told of on `chat_actions`
        self.clock = clock
        self._next_prune = 0.0
        # this board's process: its own miss records are counted when made, not again when read back
        self.instance = uuid.uuid4().hex
        self.on_miss: Callable[[dict], None] | None = None  # another process's miss record (the throttles)

    def handle(self, record) -> None:
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        self.apply(key, record.value, record.partition, record.offset, record.timestamp / 1000)

    def apply(self, key: str | None, value: bytes | None, partition: int, offset: int, at: float) -> None:
        with self._cond:
            self.positions[partition] = max(self.positions.get(partition, 0), offset + 1)
            if value is not None:
                self._apply(value, at)
            self.changed()

    def _apply(self, value: bytes, at: float) -> None:
        try:
            record = json.loads(value)
            op = record["op"]
            if op == "signup":
                self._sign_up(record)
            elif op == "seen":
                address, author = record["address"], record["author"]
                if isinstance(address, str) and isinstance(author, str):
                    self.note_seen(address, author, float(record.get("at", at)))
            elif op == "announced":
                if isinstance(record["id"], str):
                    self.announced.add(record["id"])
            elif op == contract.ACCOUNT_MISS_OP:
                if record.get("by") != self.instance and self.on_miss is not None:
                    self.on_miss(record)
            elif op == "lift":
                address = record["address"]
                if isinstance(address, str):
                    self.lifted[address] = max(self.lifted.get(address, 0.0), float(record["at"]))
        except (ValueError, KeyError, TypeError):
            log.warning("accounts: skipping a record of %s that is not an account record", self.topic)

    def _sign_up(self, record: dict) -> None:
        author, account_id, password_hash = record["author"], record["id"], record["hash"]
        keys = tuple(record["keys"])
        if not all(isinstance(v, str) for v in (author, account_id, password_hash, *keys)) or not keys:
            raise TypeError("not a sign-up")
        won = author not in self.accounts and not any(k in self.by_key for k in keys)
        self.granted[account_id] = won
        if won:
            self.accounts[author] = Account(author, account_id, password_hash, keys, float(record["at"]))
            for k in keys:
                self.by_key[k] = author

    def note_seen(self, address: str, author: str, at: float) -> None:
        """`author` signed in from `address` at `at`: the latest such time is kept, within the retention."""
        now = self.clock()
        if at <= now - self.seen_retention_s:
            return
        authors = self.seen.setdefault(address, {})
        if author not in authors:
            self.seen_pairs += 1
        authors[author] = max(authors.get(author, 0.0), at)
        if self.seen_pairs > self.MAX_SEEN or now >= self._next_prune:
            self.prune_seen(now)

    def prune_seen(self, now: float) -> None:
        """Forget the sign-ins older than the retention; past MAX_SEEN pairs, the oldest ones down to 90 %."""
        self._next_prune = now + self.PRUNE_EVERY_S
        horizon = now - self.seen_retention_s
        if self.seen_pairs > self.MAX_SEEN:
            times = sorted(at for authors in self.seen.values() for at in authors.values())
            horizon = max(horizon, times[len(times) - int(self.MAX_SEEN * 0.9)])
        for address in list(self.seen):
            authors = {a: at for a, at in self.seen[address].items() if at > horizon}
            if authors:
                self.seen[address] = authors
            else:
                del self.seen[address]
        self.seen_pairs = sum(len(authors) for authors in self.seen.values())
        self.lifted = {a: at for a, at in self.lifted.items() if a in self.seen}

    def owner(self, name: str, keys: tuple[str, ...]) -> Account | None:
        """The account of this spelling, else the one holding one of `keys` (the look key first)."""
        account = self.accounts.get(name)
        if account is not None:
            return account
        for k in keys:
            author = self.by_key.get(k)
            if author is not None:
                return self.accounts[author]
        return None

    def past(self, partition: int, offset: int) -> bool:
        return self.positions.get(partition, 0) > offset

    def sizes(self) -> dict:
        return {
            "accounts": len(self.accounts),
            "account_addresses": len(self.seen),
            "account_address_sign_ins": self.seen_pairs,
        }


class AccountLog(Protocol):
    """Where account records go: `chat_accounts` (KafkaAccountLog); tests without a broker pass a stand-in
    (tests/api/session_log.py's LocalSessionLog serves both logs)."""

    def append(self, key: str, record: dict | None, wait: bool = True) -> tuple[int, int] | None: ...


class KafkaAccountLog:
    def __init__(self, producer):
        self.producer = producer

    def append(self, key: str, record: dict | None, wait: bool = True) -> tuple[int, int] | None:
        return self.producer.publish(contract.TOPIC_ACCOUNTS, key, record, [], what="account record", wait=wait)


class ActionLog(Protocol):
    """Where a new account is announced for the ledger (Delta `accounts`): `chat_actions` (KafkaActionLog); an
    ApiError when it is not taken."""

    def record(self, action: dict) -> None: ...


class KafkaActionLog:
    def __init__(self, producer):
        self.producer = producer

    def record(self, action: dict) -> None:
        self.producer.send_action(action)


class KeptActions:
    """The actions of an app whose accounts log is a test's in-process stand-in (ACCOUNT_LOG): kept here, in
    order, for the test to read, as the ledger would from `chat_actions`."""

    def __init__(self) -> None:
        self.actions: list[dict] = []

    def record(self, action: dict) -> None:
        self.actions.append(action)


class NameTaken(Exception):
    """The name, or one of its look-alikes, belongs to someone: `same` when the spelling is identical."""

    def __init__(self, wanted: str, same: bool):
        super().__init__(wanted)
        self.wanted, self.same = wanted, same

    def error(self) -> ApiError:
        extra = {"author": self.wanted} if self.same else {}
        return ApiError(409, "name_taken", wanted=self.wanted, **extra)


class AccountStore:
    """Accounts shared by every API process through `chat_accounts`; argon2 password hashes."""

    SEEN_REFRESH_S = 86_400.0  # a sign-in from a known address is noted again at most this often

    def __init__(
        self,
        board: AccountBoard,
        log_: AccountLog,
        hasher: PasswordHasher,
        settle_timeout_s: float = 10.0,
        actions: ActionLog | None = None,
    ):
        self.board = board
        self.log = log_
        self.actions = actions or KeptActions()
        self.hasher = hasher
        self.settle_timeout_s = settle_timeout_s
        # an unknown name is checked against this, so that its answer takes as long as a wrong password's
        self._dummy_hash = hasher.hash(secrets.token_urlsafe(24))
        # each hash takes its memory cost (64 MiB by default) for its time: a burst of sign-ins waits its turn
        self._hashing = threading.BoundedSemaphore(2)
        self._seen_sent: dict[tuple[str, str], float] = {}  # (author, address) → when this process noted it
        self._announced: set[str] = set()  # accounts this process announced, before the log hands that back

    def _settled(self, where: tuple[int, int] | None) -> None:
        if where is None or not self.board.wait_until(lambda: self.board.past(*where), self.settle_timeout_s):
            raise ApiError(503, "accounts_log_timeout")

    def ready(self) -> None:
        """Wait until this process has read the whole log as it stood when it started (a restarted process
        knows every account before it answers about one); 503 when it cannot."""
        if not self.board.caught_up and not self.board.wait_until(lambda: self.board.caught_up, self.settle_timeout_s):
            raise ApiError(503, "accounts_log_timeout")

    def owner(self, name: str) -> Account | None:
        return self.board.owner(name, name_keys(name))

    def sign_up(self, author: str, password: str) -> Account:
        """A new account for `author`: NameTaken when an account holds its spelling or one of its keys, or a
        racing sign-up (on any process) got there first in the log."""
        keys = name_keys(author)
        taken = self.board.owner(author, keys)
        if taken is not None:
            raise NameTaken(author, taken.author == author)
        with self._hashing:
            password_hash = self.hasher.hash(password)
        account_id = str(uuid.uuid4())
        record = {"op": "signup", "id": account_id, "author": author, "keys": list(keys), "hash": password_hash}
        record["at"] = time.time()
        self._settled(self.log.append(contract.ACCOUNTS_KEY, record))
        if not self.board.granted.get(account_id):
            taken = self.board.owner(author, keys)
            raise NameTaken(author, taken is not None and taken.author == author)
        account = self.board.accounts[author]
        self.announce(account)
        return account

    def announce(self, account: Account) -> bool:
        """Tell the ledger of `account` on `chat_actions` (for Delta `accounts`; no hash, no address), then note
        in `chat_accounts` that it was told. When Kafka refuses, the account stands (it is in `chat_accounts`)
        and the account's next sign-in, on any process, announces it again; the ledger keeps one row per id."""
        action = {
            "id": account.account_id,
            "action": contract.ACCOUNT_ACTION,
            "author": account.author,
            "keys": list(account.keys),
            "by": "sign-up",
            "timestamp": format_utc(account.created_at),
        }
        try:
            self.actions.record(action)
        except ApiError:
            log.warning("account %s not announced to the ledger: its next sign-in will", account.account_id)
            return False
        self._announced.add(account.account_id)
        try:
            self.log.append(contract.ACCOUNTS_KEY, {"op": "announced", "id": account.account_id}, False)
        except ApiError:
            pass  # another process may announce it again at its next sign-in: the ledger keeps one row
        return True

    def announced(self, account: Account) -> bool:
        return account.account_id in self.board.announced or account.account_id in self._announced

    def verify(
        self,
        name: str,
        password: str,
        gate: Callable[[], None] | None = None,
        missed: Callable[[], None] | None = None,
    ) -> Account | None:
        """The account `name` (any spelling of it) signs in to with `password`, or None; an unknown name costs
        as long as a wrong password (a dummy hash is checked). `gate` (the throttles' check) and `missed` (their
        count) run in the hashing slot, so guesses queued behind it see the misses before them."""
        account = self.owner(name)
        with self._hashing:
            if gate is not None:
                gate()
            try:
                ok = self.hasher.verify(account.password_hash if account else self._dummy_hash, password)
            except (VerificationError, InvalidHashError):
                ok = False
            if not (ok and account is not None) and missed is not None:
                missed()
        return account if ok and account is not None else None

    def saw(self, author: str, address: str) -> None:
        """Note (in the log, for every process) that `author` signed in from `address`: the first time, then at
        most every SEEN_REFRESH_S, so that the latest sign-in there is known within a day. A UI feed reader's
        sign-ins are not noted: it is no person, and its address is the UI's, which every browser shares."""
        if contract.is_reader_name(author):
            return
        now = time.time()
        refresh = min(self.SEEN_REFRESH_S, self.board.seen_retention_s / 4)
        known = max(self.board.seen.get(address, {}).get(author, 0.0), self._seen_sent.get((author, address), 0.0))
        if now - known < refresh:
            return
        if len(self._seen_sent) >= 100_000:
            self._seen_sent = {k: t for k, t in self._seen_sent.items() if now - t < refresh}
        self._seen_sent[(author, address)] = now
        try:
            self.log.append(
                contract.ACCOUNTS_KEY, {"op": "seen", "author": author, "address": address, "at": now}, False
            )
        except ApiError:
            self._seen_sent.pop((author, address), None)  # Kafka is away: the next sign-in notes it

    def note_miss(self, kind: str, address: str, account_key: str | None = None) -> None:
        """Tell every process of a wrong password (`kind` "sign_in", with the account's key) or a sign-up
        ("sign_up") from `address`; nothing secret. Not waited for: this process has counted it already."""
        record = {"op": contract.ACCOUNT_MISS_OP, "kind": kind, "account": account_key, "address": address}
        record.update(at=time.time(), by=self.board.instance)
        try:
            self.log.append(contract.ACCOUNTS_KEY, record, False)
        except ApiError:
            pass  # Kafka is away: this process still counts it

    def lift(self, address: str, by: str) -> None:
        """Lift the hold on `address` for every process; `by`: the moderator, kept in the record."""
        record = {"op": "lift", "address": address, "at": time.time(), "by": by}
        self._settled(self.log.append(contract.ACCOUNTS_KEY, record))


def _epoch_s(timestamp: str | None) -> float | None:
    try:
        return datetime.strptime(timestamp or "", contract.TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class Holds:
    """Sign-up holds: an address a blocked user signed in from takes no new sign-up for `hold_s` after the
    block, unless a moderator lifted its hold since. Derived from what every process reads: the addresses from
    `chat_accounts`, the blocks from the moderation state (the Delta snapshot and `chat_notices`)."""

    def __init__(self, board: AccountBoard, moderation, hold_s: float):
        self.board, self.moderation, self.hold_s = board, moderation, hold_s

    def hold(self, address: str, now: float) -> tuple[float, list[str]]:
        """(until, the blocked users behind it); until is 0 when the address is not held."""
        if self.hold_s <= 0:
            return 0.0, []
        lifted = self.board.lifted.get(address, 0.0)
        until, who = 0.0, []
        for author, seen_at in list(self.board.seen.get(address, {}).items()):
            state = self.moderation.state(author)
            if state is None or not state.is_blocked:
                continue
            since = _epoch_s(state.blocked_at) or seen_at
            if since > lifted and since + self.hold_s > now:
                until = max(until, since + self.hold_s)
                who.append(author)
        return until, sorted(who)

    def check(self, address: str) -> None:
        now = time.time()
        until, _ = self.hold(address, now)
        if until > now:
            seconds = math.ceil(until - now)
            raise ApiError(403, "address_held", headers={"Retry-After": str(seconds)}, seconds=seconds)

    def listing(self) -> list[dict]:
        now = time.time()
        holds = []
        for address in sorted(list(self.board.seen)):
            until, who = self.hold(address, now)
            if until > now:
                holds.append({"address": address, "until": format_utc(until), "authors": who})
        return holds


class ReservedNames:
    """The authors the moderation state knows (the Delta snapshot's users and those the notices have told
    of), by key: their names stay theirs. Keys are worked out once per author."""

    def __init__(self, moderation):
        self.moderation = moderation
        self._keys_of: dict[str, tuple[str, ...]] = {}
        self._by_key: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _authors(self) -> list[str]:
        return self.moderation.snapshot.authors() + self.moderation.notices.standing_authors()

    def authors_for(self, keys: tuple[str, ...]) -> set[str]:
        with self._lock:
            for author in self._authors():
                if author not in self._keys_of:
                    self._keys_of[author] = k = name_keys(author)
                    for key in k:
                        self._by_key.setdefault(key, set()).add(author)
            return set().union(*(self._by_key.get(k, set()) for k in keys))

    def taken(self, author: str, keys: tuple[str, ...]) -> bool:
        """Whether an author of the history holds one of `keys` under another spelling, or `author` itself is
        blocked: an author may sign up as exactly their own name unless blocked, never as a look-alike."""
        return any(other != author or self.moderation.is_blocked(other) for other in self.authors_for(keys) | {author})


class SharedThrottle(Lockout):
    """At most `limit` misses per key (an account's key, a client address) within `window_s`, counted by every API
    process: its own misses at once, the others' as `chat_accounts` brings their miss records. The miss that
    reaches the limit locks the key out for `window_s` (429 with Retry-After, the right password included, else
    the answer would tell a guesser when they got it). Memory: at most `limit` times per key, none older than
    the window, at most MAX_KEYS keys."""

    MAX_KEYS = 100_000

    def __init__(self, limit: int, window_s: float, clock=time.time, code: str = "too_many_attempts"):
        super().__init__(clock, code)  # _misses: key → its latest miss times, oldest first
        self.limit, self.window_s = int(limit), float(window_s)

    def missed(self, key: str, at: float | None = None) -> None:
        """A miss of `key` at `at` (now by default; another process's miss carries its own time)."""
        now = self.clock()
        at = now if at is None else min(at, now)
        if at <= now - self.window_s:
            return
        with self._lock:
            if len(self._misses) >= self.MAX_KEYS and key not in self._misses:
                self._forget(now)
            times = self._misses.setdefault(key, [])
            bisect.insort(times, at)  # another process's miss may arrive after a later one of ours
            del times[: max(0, len(times) - self.limit)]
            while times and times[0] <= now - self.window_s:
                times.pop(0)
            if len(times) >= self.limit:
                self._locked[key] = max(self._locked.get(key, 0.0), times[-1] + self.window_s)

    def _forget(self, now: float) -> None:
        self._misses = {k: t for k, t in self._misses.items() if t and t[-1] > now - self.window_s}
        self._locked = {k: until for k, until in self._locked.items() if until > now}
        if len(self._misses) >= self.MAX_KEYS:  # a flood of fresh keys: forget the oldest half
            keep = sorted(self._misses, key=lambda k: self._misses[k][-1])[len(self._misses) // 2 :]
            self._misses = {k: self._misses[k] for k in keep}

    def sizes(self) -> tuple[int, int]:
        return len(self._misses), len(self._locked)


class Accounts:
    """What the endpoints use: the store, the holds, the reserved names and the throttles (shared by every API
    process through the miss records of `chat_accounts`)."""

    def __init__(self, store: AccountStore, holds: Holds, reserved: ReservedNames, config):
        self.store, self.holds, self.reserved = store, holds, reserved
        self.guest_names = bool(config["GUEST_NAMES"])
        self.password_min_chars = int(config["PASSWORD_MIN_CHARS"])
        window = float(config["SIGN_IN_WINDOW_S"])
        self.by_account = SharedThrottle(config["SIGN_IN_LIMIT"], window)
        self.by_address = SharedThrottle(config["SIGN_IN_LIMIT"], window)
        self.sign_ups = SharedThrottle(config["SIGN_UP_LIMIT"], window)
        store.board.on_miss = self.count_miss

    def count_miss(self, record: dict) -> None:
        """Another process's miss record, read from `chat_accounts`."""
        at, address, kind = float(record["at"]), record["address"], record["kind"]
        if not isinstance(address, str):
            raise TypeError("not a miss record")
        if kind == "sign_up":
            self.sign_ups.missed(address, at)
        elif kind == "sign_in":
            self.by_address.missed(address, at)
            if isinstance(record.get("account"), str):
                self.by_account.missed(record["account"], at)

    def check_name(self, author: str, guest: bool) -> None:
        """409 name_taken when `author` (any spelling of it) is not free for a new account (`guest`: for a
        guest's session)."""
        self.store.ready()
        keys = name_keys(author)
        taken = self.store.board.owner(author, keys)
        if taken is not None:
            raise NameTaken(author, taken.author == author).error()
        if self._guest_taken(author, keys) if guest else self.reserved.taken(author, keys):
            raise NameTaken(author, False).error()

    def _guest_taken(self, author: str, keys: tuple[str, ...]) -> bool:
        """A guest may use any name of the history, but no look-alike of a blocked author's."""
        return any(
            other != author and self.reserved.moderation.is_blocked(other) for other in self.reserved.authors_for(keys)
        )

    def sign_up(self, author: str, password: str, client: str) -> Account:
        self.sign_ups.check(client)
        self.sign_ups.missed(client)  # every sign-up counts: each costs a slow hash
        self.store.note_miss("sign_up", client)
        if contract.is_reader_name(author):
            raise NameTaken(author, False).error()
        self.check_name(author, guest=False)
        self.holds.check(client)
        try:
            return self.store.sign_up(author, password)
        except NameTaken as exc:
            raise exc.error() from None

    def _missed(self, account_key: str, client: str) -> None:
        self.by_address.missed(client)
        self.by_account.missed(account_key)
        self.store.note_miss("sign_in", client, account_key)

    def sign_in(self, name: str, password: str, client: str) -> Account:
        """The account `name` signs in to; 401 bad_credentials (the same for an unknown name and a wrong
        password), 429 too_many_attempts past the limits per account and per address."""
        account_key = canonical_key(name)
        self.store.ready()

        def gate() -> None:
            self.by_address.check(client)
            self.by_account.check(account_key)

        gate()
        account = self.store.verify(name, password, gate, lambda: self._missed(account_key, client))
        if account is None:
            raise ApiError(401, "bad_credentials")
        if not self.store.announced(account):  # its sign-up could not tell the ledger
            self.store.announce(account)
        return account

    def sizes(self) -> dict:
        return {
            **self.store.board.sizes(),
            "sign_in_accounts": self.by_account.sizes()[0],
            "sign_in_addresses": self.by_address.sizes()[0],
            "sign_in_lockouts": self.by_account.sizes()[1] + self.by_address.sizes()[1],
            "sign_up_addresses": self.sign_ups.sizes()[0],
        }


def clean_password(value, min_chars: int, field: str = "password") -> str:
    if value is None:
        raise ApiError(400, "field_required", field=field)
    if not isinstance(value, str):
        raise ApiError(400, "field_not_string", field=field)
    if has_surrogates(value):  # no UTF-8 form: argon2 could not hash it
        raise ApiError(400, "data_control", field=field)
    if len(value) < min_chars:
        raise ApiError(400, "password_too_short", field=field, length=len(value), minimum=min_chars)
    if len(value) > contract.MAX_PASSWORD_CHARS:
        raise ApiError(400, "password_too_long", field=field, length=len(value), maximum=contract.MAX_PASSWORD_CHARS)
    return value


def get_accounts() -> Accounts:
    return current_app.extensions["chat_accounts"]


@bp.post("/accounts")
def sign_up():
    body = json_object(request, "author", "password")
    accounts = get_accounts()
    author = clean_author(body.get("author"), current_app.config["MAX_AUTHOR_CHARS"])
    password = clean_password(body.get("password"), accounts.password_min_chars)
    account = accounts.sign_up(author, password, client_address())
    return {"author": account.author}, 201


def _address(raw: str) -> str:
    if len(raw) > MAX_ADDRESS_CHARS:
        raise ApiError(400, "field_too_long", field="address", length=len(raw), maximum=MAX_ADDRESS_CHARS)
    return raw


@bp.get("/admin/holds")
def list_holds():
    require_moderator()
    return {"holds": get_accounts().holds.listing()}


@bp.delete("/admin/holds/<address>")
def lift_hold(address: str):
    """Lift a sign-up hold; recorded in `chat_accounts`, so every process lifts it."""
    moderator = require_moderator()
    address = _address(address)
    accounts = get_accounts()
    if accounts.holds.hold(address, time.time())[0] <= time.time():
        raise ApiError(404, "no_hold", address=address)
    accounts.store.lift(address, moderator)
    return "", 204


def hasher_for(profile: str) -> PasswordHasher:
    """argon2id with one of argon2-cffi's parameter profiles (RFC_9106_LOW_MEMORY by default)."""
    return PasswordHasher.from_parameters(getattr(profiles, profile))


def init_app(app: Flask) -> None:
    """Accounts on `chat_accounts` through the process's producer; a test passes ACCOUNT_LOG (a stand-in shared
    by the apps that stand for API processes) to run without a broker."""
    retention = app.config["SEEN_RETENTION_S"]
    board = AccountBoard(float(retention))
    log_ = app.config.get("ACCOUNT_LOG")
    if log_ is None:
        log_ = KafkaAccountLog(app.extensions["chat_producer"])
        actions = app.config.get("ACTION_LOG") or KafkaActionLog(app.extensions["chat_producer"])
    else:
        actions = app.config.get("ACTION_LOG") or KeptActions()
    store = AccountStore(
        board,
        log_,
        hasher_for(app.config.get("PASSWORD_HASH_PROFILE", "RFC_9106_LOW_MEMORY")),
        actions=actions,
    )
    moderation = app.extensions["chat_moderation"]
    app.extensions["chat_accounts"] = Accounts(
        store, Holds(board, moderation, app.config["SIGNUP_HOLD_S"]), ReservedNames(moderation), app.config
    )
    if app.config.get("ACCOUNT_LOG") is not None:  # after the throttles: the others' misses read from the start
        log_.attach(board)
