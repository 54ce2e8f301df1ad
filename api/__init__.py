"""The chat's REST API (Flask): messages in to Kafka `chat`, moderated messages out of `chat_controlled`.

    gunicorn -k gthread -w 1 --threads 64 -b 127.0.0.1:5000 'api:create_app()'

`create_app(test_config)` builds the app: defaults here, overrides from the
environment (see stack/settings.py), and tests pass a dict.
"""
from __future__ import annotations

import logging

from flask import Flask

from stack import settings


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__)
    s = settings.load()
    app.config.from_mapping(
        KAFKA_BOOTSTRAP=s.kafka_bootstrap,
        # a request body larger than this is refused with 413 before it is read
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_AUTHOR_CHARS=settings.MAX_AUTHOR_CHARS,
        MAX_DATA_CHARS=settings.MAX_DATA_CHARS,
        MAX_WAIT_SECONDS=30.0,
        FEED_CAPACITY=10_000,
        FEED_HISTORY=500,
        KAFKA_SEND_TIMEOUT_S=10.0,
        START_FEED=True,
        WAREHOUSE_DIR=s.warehouse_dir,
        DATA_DIR=s.data_dir,
        SESSION_TTL_S=s.session_ttl_s,
        ADMIN_TOKEN=s.admin_token,
        SNAPSHOT_REFRESH_S=0.5,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from api import auth, errors, feed, health, messages, notices, producer, sessions, spec, users
    errors.init_app(app)
    auth.init_app(app)
    producer.init_app(app)
    feed.init_app(app)
    notices.init_app(app)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(spec.bp)
    return app
