"""gunicorn's settings for the API, wherever it runs: `make up` (stack/up.py), the `api` image (Dockerfile, both
compose files) and the tests that start it.

    gunicorn -c conf/gunicorn.conf.py        # from the repository root, with the repository on PYTHONPATH

The address comes from CHAT_API_HOST and CHAT_API_PORT (config/settings.py); options given on gunicorn's
command line override these.
"""

from config import settings

_settings = settings.load()

wsgi_app = "api:create_app()"
bind = [f"{_settings.api_host}:{_settings.api_port}"]
# gthread, with a keep-alive connection kept on its thread (api/__init__.py)
worker_class = "api.KeepAliveThreadWorker"
# one process: its Kafka producer and the tails of chat_controlled and chat_notices serve every thread
workers = 1
# each long-polling reader holds a thread for up to MAX_WAIT_SECONDS
threads = 64
# a worker is restarted when silent this long; a long poll must fit well inside it
timeout = 60
graceful_timeout = 10
