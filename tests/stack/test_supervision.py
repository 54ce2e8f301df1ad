"""stack/up.py's supervision: a service that is alive but no longer answers its health check (here an HTTP
server stopped with SIGSTOP, as a wedged API would be) is stopped, so that the loop restarts it, and the
status line says why; one that answers is left alone."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from stack.broker import free_port, port_open
from stack.up import Service, http_answers, stop_silent


@pytest.mark.timeout(120)
def test_a_service_that_stops_answering_is_stopped_and_says_so(tmp_path, capsys):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    svc = Service(
        "api",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        tmp_path / "server.log",
        dict(os.environ),
        ready=lambda: port_open("127.0.0.1", port),
        answers=lambda: http_answers(url, timeout_s=0.5),
        silent_limit_s=1.0,
        start_grace_s=0.0,
    )
    svc.start()
    try:
        svc.wait_ready(30)
        assert stop_silent([svc]) == [] and svc.alive()
        os.kill(svc.process.pid, signal.SIGSTOP)  # alive, silent
        stopped: list[str] = []
        while not stopped:
            stopped = stop_silent([svc])
            time.sleep(0.2)
        assert stopped == ["api"] and not svc.alive()
        assert "api     alive but not answering its health check for" in capsys.readouterr().out
    finally:
        svc.stop(5)
