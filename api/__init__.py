"""The chat's REST API (Flask): messages in to Kafka `chat`, moderated messages out of `chat_controlled`.

    gunicorn -c conf/gunicorn.conf.py        # how every deployment runs it (api/asgi.py around this app)

`create_app(test_config)` builds the app from config.settings (tests pass a dict
of overrides). `KeepAliveThreadWorker` is the gthread worker it ran under before
the ASGI server; the benchmark still compares the two. README "Trying the API by
hand" lists the endpoints.
"""

from __future__ import annotations

import logging
import select
import time
from pathlib import Path

from flask import Flask

from config import contract, settings


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    s = settings.load()
    app.config.from_mapping(
        KAFKA_BOOTSTRAP=s.kafka_bootstrap,
        # a request body larger than this is refused with 413 before it is read
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_AUTHOR_CHARS=contract.MAX_AUTHOR_CHARS,
        MAX_DATA_CHARS=contract.MAX_DATA_CHARS,
        MAX_WAIT_SECONDS=30.0,
        FEED_CAPACITY=10_000,
        FEED_HISTORY=500,
        KAFKA_SEND_TIMEOUT_S=10.0,
        START_FEED=True,
        WAREHOUSE_DIR=s.warehouse_dir,
        OBJECT_STORE=s.object_store,  # how to reach WAREHOUSE_DIR when it is an s3a:// location
        DATA_DIR=s.data_dir,
        SESSION_TTL_S=s.session_ttl_s,
        ADMIN_TOKEN=s.admin_token,
        MODERATORS_FILE=s.moderators_file,  # read (and checked) by auth.init_app
        READER_TOKEN=s.reader_token,
        SECRET_KEY=s.secret_key,
        SNAPSHOT_REFRESH_S=0.5,
        JSON_SORT_KEYS=False,
        # the Flask test client's Host is localhost; the ASGI test client's is testserver
        ALLOWED_HOSTS=s.api_allowed_hosts,
        LONG_POLLS_PER_SESSION=s.api_long_polls_per_session,
        LONG_POLLS_PER_CLIENT=s.api_long_polls_per_client,
        RATE_LIMIT_MESSAGES=s.rate_limit_messages,
        RATE_LIMIT_WINDOW_S=s.rate_limit_window_s,
        SPAM_REPEATS=s.spam_repeats,
        SPAM_WINDOW_S=s.spam_window_s,
        GUEST_NAMES=s.guest_names,
        PASSWORD_MIN_CHARS=s.password_min_chars,
        SIGN_IN_LIMIT=s.sign_in_limit,
        SIGN_UP_LIMIT=s.sign_up_limit,
        SIGN_IN_WINDOW_S=s.sign_in_window_s,
        SIGNUP_HOLD_S=s.signup_hold_s,
        SEEN_RETENTION_S=s.seen_retention_s,
        # argon2-cffi's parameter profile for password hashes (tests take CHEAPEST)
        PASSWORD_HASH_PROFILE="RFC_9106_LOW_MEMORY",
    )
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from api import (
        accounts,
        auth,
        chat,
        errors,
        feed,
        flood,
        health,
        messages,
        moderators,
        notices,
        poll,
        producer,
        security,
        sessions,
        spec,
        users,
    )
    from api.tail import CursorSigner, KafkaTail

    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or auth.load_secret(Path(app.config["DATA_DIR"]))
    cursors = CursorSigner(app.config["SECRET_KEY"])
    errors.init_app(app)
    security.init_app(app)
    producer.init_app(app)
    feed.init_app(app, cursors)
    notices.init_app(app, cursors)
    auth.init_app(app)
    moderators.init_app(app)
    accounts.init_app(app)
    flood.init_app(app)
    limits = app.extensions["chat_flood"]
    followers = [
        app.extensions["chat_feed"],
        app.extensions["chat_moderation"].notices,
        limits.slow_mode,
        limits.counter,
    ]
    if app.config.get("SESSION_LOG") is None:
        followers.append(app.extensions["chat_auth"].store.board)
    if app.config.get("ACCOUNT_LOG") is None:
        followers.append(app.extensions["chat_accounts"].store.board)
    app.extensions["chat_tail"] = KafkaTail(app.config["KAFKA_BOOTSTRAP"], followers)
    if app.config["START_FEED"]:
        app.extensions["chat_tail"].start()
    app.register_blueprint(sessions.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(moderators.bp)
    app.register_blueprint(poll.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(spec.bp)
    return app


def _keepalive_thread_worker() -> type:
    from gunicorn.workers.gthread import ThreadWorker

    class KeepAliveThreadWorker(ThreadWorker):
        """gunicorn's gthread worker, except that the thread that answered a keep-alive request waits for
        that connection's next request itself, while every open connection can have a thread of its own.

        gthread hands each such connection back to the main thread (a wake-up pipe, an epoll register and
        unregister, a pool submit: four thread switches under the GIL per request), which costs busy
        clients much of their throughput. The thread gives the connection back to the poller as gthread
        does when it idles for `keepalive` seconds, when the worker stops, or within 50 ms once there are
        more connections than threads (so a new connection never waits for an idle one's thread).
        """

        def handle(self, conn):
            while True:
                result = super().handle(conn)
                if result is not True or conn.is_http2 or not self._next_request_comes(conn):
                    return result

        def _next_request_comes(self, conn) -> bool:
            if conn.parser.unreader.buf.getvalue():  # the next request was read along with the last one
                return True
            poll = select.poll()
            poll.register(conn.sock, select.POLLIN)
            deadline = time.monotonic() + self.cfg.keepalive
            while self.alive and self.nr_conns <= self.cfg.threads:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if poll.poll(min(left, 0.05) * 1000):  # readable: a request, or the client closed
                    return True
            return False

    KeepAliveThreadWorker.__module__ = __name__
    return KeepAliveThreadWorker


def __getattr__(name: str):
    """`api.KeepAliveThreadWorker` for gunicorn's worker_class, built on first use: the app needs no gunicorn."""
    if name == "KeepAliveThreadWorker":
        worker = globals()[name] = _keepalive_thread_worker()
        return worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
