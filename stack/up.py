"""`make up`: start the whole chat on this machine and keep it running until Ctrl-C.

Starts, in order: the Kafka broker (KRaft, formatted once under DATA_DIR/kafka),
the topics, the Spark streams (relay and ledger in one Spark application), the
API (gunicorn) and the UI (uvicorn); prints a
status line per step and the URLs; restarts a part that dies; stops everything
cleanly on Ctrl-C or SIGTERM. Logs go to DATA_DIR/log/.

With CHAT_KAFKA_BOOTSTRAP set to an existing Kafka, no broker is started here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from config import contract, settings
from stack.broker import BrokerError, KafkaBroker, port_open
from stack.topics import create_topics

PY = sys.executable


def say(step: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {step:<7} {text}", flush=True)


@dataclass
class Service:
    name: str
    cmd: list[str]
    log_file: Path
    env: dict[str, str]
    ready: callable
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff_until: float = 0.0
    extra: dict = field(default_factory=dict)
    ready_file: Path | None = None  # written by the service once it is ready; stale after a crash

    def start(self) -> None:
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(self.cmd)}\n".encode())
            self.process = subprocess.Popen(
                self.cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=settings.REPO_ROOT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode if self.process else '?'}"
                    f"; see {self.log_file}:\n{tail(self.log_file)}"
                )
            if self.ready():
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s; see {self.log_file}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def build_services(s: settings.Settings, env: dict[str, str]) -> list[Service]:
    streams_ready = s.run_dir / "streams.ready"
    return [
        Service(
            "streams",
            [PY, "-m", "pipelines.streams"],
            s.log_dir / "streams.log",
            env,
            ready=streams_ready.exists,
            ready_file=streams_ready,
        ),
        Service(
            "api",
            [
                PY,
                "-m",
                "gunicorn",
                "-k",
                "api.KeepAliveThreadWorker",
                "-w",
                "1",
                "--threads",
                "64",
                "--timeout",
                "60",
                "--graceful-timeout",
                "10",
                "-b",
                f"{s.api_host}:{s.api_port}",
                "api:create_app()",
            ],
            s.log_dir / "api.log",
            env,
            ready=lambda: http_ok(f"http://{s.api_host}:{s.api_port}/health"),
        ),
        Service(
            "ui",
            [PY, "-m", "uvicorn", "ui.app:app", "--host", s.ui_host, "--port", str(s.ui_port)],
            s.log_dir / "ui.log",
            env,
            ready=lambda: http_ok(f"http://{s.ui_host}:{s.ui_port}/"),
        ),
    ]


def _interrupt(signum, _frame):
    raise KeyboardInterrupt


def main() -> int:
    s = settings.load()
    t0 = time.monotonic()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(
        os.environ,
        CHAT_DATA_DIR=str(s.data_dir),
        CHAT_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
        CHAT_API_URL=s.api_url,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(settings.REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    for port, what in ((s.api_port, "API (CHAT_API_PORT)"), (s.ui_port, "UI (CHAT_UI_PORT)")):
        if port_open("127.0.0.1", port):
            say("error", f"port {port} for the {what} is already in use: is `make up` already running?")
            return 1

    broker = None
    services: list[Service] = []
    return_code = 0
    try:
        if s.embedded_kafka:
            broker = KafkaBroker(
                home=s.kafka_dir,
                port=s.kafka_port,
                controller_port=s.kafka_controller_port,
                log_file=s.log_dir / "kafka.log",
            )
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

        while True:
            time.sleep(1)
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
