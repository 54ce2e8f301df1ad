"""`make up`: start the whole chat on this machine and keep it running until Ctrl-C.

The broker (unless CHAT_KAFKA_BOOTSTRAP names one), the topics, the Spark streams,
the API and the UI, each restarted when it dies; logs under DATA_DIR/log/.
README "The two commands" says what each part is.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config import contract, settings
from config.private import NotPrivate, check_private, private_dir, read_private
from stack.broker import BrokerError, default_broker, port_open
from stack.processes import child_env, spawn, stop_process_group, tail, without_secrets
from stack.topics import create_topics

PY = sys.executable
# gunicorn's settings for the API: the same file for the image, compose and the tests
GUNICORN_CONF = settings.REPO_ROOT / "conf" / "gunicorn.conf.py"


def api_argv() -> list[str]:
    """The API under gunicorn, bound to CHAT_API_HOST:CHAT_API_PORT of the environment it is given."""
    return [PY, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]


def api_address(s: settings.Settings) -> str:
    """Where to reach the API from this machine (a wildcard bind is reached on loopback)."""
    host = "127.0.0.1" if s.api_host in ("0.0.0.0", "::", "") else s.api_host
    return f"{host}:{s.api_port}"


def say(step: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {step:<7} {text}", flush=True)


@dataclass
class Service:
    name: str
    cmd: list[str]
    log_file: Path
    env: dict[str, str]
    ready: Callable[[], bool]
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff_until: float = 0.0
    ready_file: Path | None = None  # written by the service once it is ready; stale after a crash
    # answers while alive: the supervisor restarts a service whose `answers()` stays false this long
    answers: Callable[[], bool] | None = None
    silent_limit_s: float = 20.0
    start_grace_s: float = 60.0  # the API reads its topics before it answers 200
    answered_at: float = 0.0

    def start(self) -> None:
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        self.process = spawn(self.cmd, self.log_file, self.env)
        self.started_at = self.answered_at = time.monotonic()

    def silent_for(self) -> float:
        """Seconds since the service last answered its health check (0 when it answers, or has none)."""
        if self.answers is None or not self.alive():
            return 0.0
        now = time.monotonic()
        if self.answers():
            self.answered_at = now
            return 0.0
        return now - max(self.answered_at, self.started_at + self.start_grace_s)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self.process = self.process, None
        stop_process_group(proc, timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode if self.process else '?'}"
                    f"; see {self.log_file}:\n{tail(self.log_file, 15)}"
                )
            if self.ready():
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s; see {self.log_file}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def http_answers(url: str, timeout_s: float = 3.0) -> bool:
    """Whether `url` answers at all within the time (a 503 "degraded" answers; a hang or a refusal does not)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def prepare_dirs(s: settings.Settings) -> None:
    """The data, run and log directories, created 0700; NotPrivate (naming the path and the fix) when the run
    directory or the generated secret_key is another user's or open to other users."""
    for path in (s.data_dir, s.run_dir, s.log_dir):
        private_dir(path)
    check_private(s.run_dir)
    key = s.data_dir / "secret_key"
    if not s.secret_key and os.path.lexists(key):
        read_private(key)


def build_services(s: settings.Settings, env: dict[str, str]) -> list[Service]:
    """The streams, the API and the UI; only the API is given the secrets (CHAT_SECRET_KEY, CHAT_ADMIN_TOKEN), and
    the UI the one it shares with the API (CHAT_READER_TOKEN: one per run unless set)."""
    streams_ready = s.run_dir / "streams.ready"
    env = {**env, "CHAT_READER_TOKEN": s.reader_token or env.get("CHAT_READER_TOKEN") or secrets.token_urlsafe(32)}
    public_env = without_secrets(env)
    return [
        Service(
            "streams",
            [PY, "-m", "pipelines.streams"],
            s.log_dir / "streams.log",
            public_env,
            ready=streams_ready.exists,
            ready_file=streams_ready,
        ),
        Service(
            "api",
            api_argv(),
            s.log_dir / "api.log",
            env,
            ready=lambda: http_ok(f"http://{api_address(s)}/health"),
            answers=lambda: http_answers(f"http://{api_address(s)}/health"),
        ),
        Service(
            "ui",
            [PY, "-m", "uvicorn", "ui.app:app", "--host", s.ui_host, "--port", str(s.ui_port)],
            s.log_dir / "ui.log",
            {**public_env, "CHAT_READER_TOKEN": env["CHAT_READER_TOKEN"]},
            ready=lambda: http_ok(f"http://{s.ui_host}:{s.ui_port}/"),
        ),
    ]


def stop_silent(services: list[Service]) -> list[str]:
    """Stop each service that is alive but has not answered its health check for its limit (a hung process is
    as good as dead: the supervisor then restarts it as it restarts one that died); the names stopped."""
    stopped = []
    for svc in services:
        silent = svc.silent_for()
        if silent >= svc.silent_limit_s:
            say(svc.name, f"alive but not answering its health check for {silent:.0f}s; restarting")
            svc.stop(10)
            stopped.append(svc.name)
    return stopped


def _interrupt(signum, _frame):
    raise KeyboardInterrupt


def main() -> int:
    s = settings.load()
    t0 = time.monotonic()
    os.umask(0o077)  # whatever the launcher and its services create (tables, checkpoints, logs) is this user's alone
    try:
        prepare_dirs(s)
    except NotPrivate as exc:
        say("error", str(exc))
        return 1
    try:  # the API reads it when it starts, and would stop on a bad one: say so before anything starts
        settings.load_moderators(s.moderators_file, s.admin_token)
    except SystemExit as exc:
        say("error", str(exc))
        return 1
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    # what this process settled, so that the services agree with it (a relative data dir, the embedded broker)
    env = child_env(CHAT_DATA_DIR=str(s.data_dir), CHAT_KAFKA_BOOTSTRAP=s.kafka_bootstrap, CHAT_API_URL=s.api_url)
    for port, what in ((s.api_port, "API (CHAT_API_PORT)"), (s.ui_port, "UI (CHAT_UI_PORT)")):
        if port_open("127.0.0.1", port):
            say("error", f"port {port} for the {what} is already in use: is `make up` already running?")
            return 1

    broker = None
    services: list[Service] = []
    return_code = 0
    try:
        if s.embedded_kafka:
            broker = default_broker(s)
            fresh = not broker.is_formatted()
            say("kafka", "formatting storage (first run) ..." if fresh else f"reusing data in {broker.home}")
            t = time.monotonic()
            broker.start()
            say("kafka", f"broker ready at {broker.bootstrap} in {time.monotonic() - t:.1f}s (log {broker.log_file})")
        else:
            say("kafka", f"using the Kafka at {s.kafka_bootstrap} (no embedded broker)")
        created = create_topics(
            s.kafka_bootstrap,
            partitions=s.topic_partitions,
            replication_factor=s.replication_factor,
            min_insync_replicas=s.min_insync_replicas,
        )
        say("topics", f"{', '.join(contract.TOPICS)} ready" + (f" (created {', '.join(created)})" if created else ""))

        services = build_services(s, env)
        for svc in services:  # start all, then wait: Spark's start-up overlaps the others'
            svc.start()
            say(svc.name, f"starting (log {svc.log_file})")
        for svc in services:
            svc.wait_ready(300)  # Spark takes a minute on 2 cores, several when they are busy
            say(svc.name, f"ready in {time.monotonic() - svc.started_at:.1f}s")
        print(flush=True)
        say(
            "ready",
            f"in {time.monotonic() - t0:.1f}s.  Chat UI: http://{s.ui_host}:{s.ui_port}   "
            f"API: http://{s.api_host}:{s.api_port} (docs /openapi.yaml)   Ctrl-C stops everything",
        )

        next_check = time.monotonic()
        while True:
            time.sleep(1)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 5
                stop_silent(services)
            for svc in services:
                if svc.alive() or time.monotonic() < svc.backoff_until:
                    continue
                if svc.process is not None:
                    say(svc.name, f"exited with code {svc.process.returncode}; restarting (see {svc.log_file})")
                svc.restarts += 1
                svc.backoff_until = time.monotonic() + min(30, 2 ** min(svc.restarts, 5))
                svc.start()
            if broker is not None and broker.process is not None and broker.process.poll() is not None:
                say("kafka", f"broker exited with code {broker.process.returncode}; restarting")
                broker.process = None
                broker.start()
    except KeyboardInterrupt:
        pass
    except (BrokerError, RuntimeError, OSError) as exc:
        say("error", str(exc))
        return_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(flush=True)
        say("stop", "stopping ...")
        for svc in reversed(services):
            svc.stop()
            say(svc.name, "stopped")
        if broker is not None:
            broker.stop()
            say("kafka", "stopped")
    return return_code


if __name__ == "__main__":
    sys.exit(main())
