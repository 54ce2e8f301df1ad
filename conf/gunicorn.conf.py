"""gunicorn's settings for the API, wherever it runs: `make up` (stack/up.py), the `api` image (Dockerfile, both
compose files) and the tests that start it.

    gunicorn -c conf/gunicorn.conf.py        # from the repository root, with the repository on PYTHONPATH

The address comes from CHAT_API_HOST and CHAT_API_PORT, the number of worker processes from CHAT_API_WORKERS
(config/settings.py); options given on gunicorn's command line override these.
"""

from config import settings

_settings = settings.load()

# one ASGI app per worker: native long-polls on the event loop, the Flask app for the rest (api/asgi.py)
wsgi_app = "api.asgi:create_asgi_app()"
bind = [f"{_settings.api_host}:{_settings.api_port}"]
# uvicorn with uvloop and httptools, a read timeout per request and a JSON 503 past the connection cap
worker_class = "api.server.ChatWorker"
# each worker reads the topics itself and shares nothing with the others but Kafka: one per core
workers = _settings.api_worker_count
# an idle keep-alive connection costs a file descriptor only, and closing it races the client's next request
# (sent as the server closes, it fails with a reset): idle connections are kept longer than clients pause
# between requests (a chat client pauses seconds; nginx's default is 75 s). A new connection still has
# CHAT_API_REQUEST_TIMEOUT_S for its first request, and the connection cap bounds the idle ones.
keepalive = 75
# a worker is restarted when silent this long (its event loop reports while long-polls wait)
timeout = 60
graceful_timeout = 10
