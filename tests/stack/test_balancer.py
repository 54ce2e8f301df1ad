"""stack/balancer.py: Debian's HAProxy with the generated configuration, in front of two stand-in backends
(tiny HTTP servers that say who they are; the API hosts themselves are in test_cluster.py): requests
alternate between the hosts, a host whose /health fails or that is gone gets nothing, and a request that
cannot reach a host is retried on the other one."""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from stack.balancer import HAPROXY, Balancer, haproxy_config
from stack.broker import free_port


class Backend:
    """An HTTP server on a free port: `/health` answers 200 (or 503 when `healthy` is false), anything else
    answers its name; `hosts` records the Host header of each request."""

    def __init__(self, name: str):
        self.name, self.port, self.healthy, self.hosts = name, free_port(), True, []
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                backend.hosts.append(self.headers.get("Host"))
                ok = self.path != "/health" or backend.healthy
                body = backend.name.encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Host:  # what Balancer needs of an API host
    def __init__(self, backend: Backend):
        self.name, self.port = backend.name, backend.port


def ask(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def wait_until(predicate, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_generated_configuration_is_valid_haproxy(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(8080, [("api-1", "10.0.0.1", 5000), ("api-2", "10.0.0.2", 5000)], stats_port=8081))
    check = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = config.read_text()
    assert "server api-1 10.0.0.1:5000 check" in text and "server api-2 10.0.0.2:5000 check" in text
    assert "http-check send meth GET uri /health" in text and "option forwardfor" in text


@pytest.mark.timeout(120)
def test_requests_alternate_and_a_sick_or_gone_host_gets_none(tmp_path):
    backends = [Backend("api-1"), Backend("api-2")]
    balancer = Balancer(tmp_path, [Host(b) for b in backends])
    balancer.start()
    try:
        wait_until(lambda: {ask(f"{balancer.url}/x") for _ in range(4)} == {"api-1", "api-2"})
        answers = [ask(f"{balancer.url}/x") for _ in range(6)]
        assert all(a != b for a, b in zip(answers, answers[1:])), answers  # round robin: one, then the other
        assert "127.0.0.1" in backends[0].hosts  # the health checks name the loopback host

        backends[0].healthy = False  # /health fails: out after two checks
        wait_until(lambda: all(ask(f"{balancer.url}/x") == "api-2" for _ in range(4)))
        backends[0].healthy = True
        wait_until(lambda: {ask(f"{balancer.url}/x") for _ in range(4)} == {"api-1", "api-2"})

        backends[1].stop()  # gone: refused connections are retried on the other host
        for _ in range(10):
            assert ask(f"{balancer.url}/x") == "api-1"
    finally:
        balancer.stop()
        backends[0].stop()


def test_a_missing_haproxy_is_a_clear_error(tmp_path, monkeypatch):
    import stack.balancer

    monkeypatch.setattr(stack.balancer, "HAPROXY", "haproxy-not-installed-here")
    with pytest.raises(stack.balancer.BalancerError, match="apt-get install haproxy"):
        Balancer(tmp_path, []).start()
    with pytest.raises(urllib.error.URLError):
        ask(f"http://127.0.0.1:{free_port()}/x")


def test_the_compose_clusters_balancer_configuration_is_the_generated_one():
    """conf/haproxy-cluster.cfg (two API containers on a Docker network) is what stack/balancer.py generates
    (regenerate with `python -m stack.balancer --write-compose-config`), and HAProxy accepts it."""
    from stack.balancer import COMPOSE_CONFIG, compose_config

    assert COMPOSE_CONFIG.read_text() == compose_config()
    check = subprocess.run([HAPROXY, "-c", "-f", str(COMPOSE_CONFIG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
