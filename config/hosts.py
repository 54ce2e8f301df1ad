"""Which Host and Origin values a server of the chat answers: the one matching rule the API (api/security.py)
and the UI (ui/guard.py) share, so a page that rebinds its DNS name to this machine, or a page on another
site opening the UI's websocket, is refused the same way by both."""

from __future__ import annotations

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
DEFAULT_PORTS = {"http": 80, "https": 443}  # left out of an origin, as browsers do
# on every answer: never sniffed into another content type, never framed by another page
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
)


def host_name(host: str) -> str:
    """The name of a Host header value, without its port: `127.0.0.1:5000` → `127.0.0.1`, `[::1]:5000` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() and ":" not in name else host


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a Host header value names one of `allowed` (names without ports; `*` allows any)."""
    if "*" in allowed:
        return True
    return bool(host) and host_name(host) in allowed


def default_hosts(bind_host: str) -> tuple[str, ...]:
    """The loopback names and the bind address (unless it is a wildcard)."""
    extra = () if bind_host in WILDCARD_BINDS else (bind_host.lower(),)
    return tuple(dict.fromkeys((*LOOPBACK_NAMES, *extra)))


def origin(scheme: str, host: str, port: int) -> str:
    """An origin as browsers send it: `http://127.0.0.1:8000`, `http://[::1]:8000` (the default port left out)."""
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{scheme}://{host.lower()}" + ("" if port == DEFAULT_PORTS.get(scheme) else f":{port}")


def default_origins(bind_host: str, port: int) -> tuple[str, ...]:
    """The pages the server itself serves: http on its port under each of its default host names."""
    return tuple(origin("http", name, port) for name in default_hosts(bind_host))


def normal_origin(value: str) -> str:
    """An Origin compared as browsers mean it: lower case, no trailing slash, the default port left out
    (a value that is not `scheme://host[:port]` is returned lower-cased, and so matches only itself)."""
    value = value.strip().lower().rstrip("/")
    scheme, sep, rest = value.partition("://")
    if not sep or not rest or "/" in rest:
        return value
    if rest.startswith("["):
        end = rest.find("]")
        name, tail = (rest[1:end], rest[end + 1 :]) if end > 0 else ("", "")
    else:
        name, colon, port = rest.partition(":")
        tail = colon + port
    if not name or (tail and not (tail[0] == ":" and tail[1:].isdigit())):
        return value
    port = int(tail[1:]) if tail else DEFAULT_PORTS.get(scheme)
    return origin(scheme, name, port) if port is not None else value


def origin_allowed(value: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether an Origin header value is one of `allowed` (`*` allows any). No Origin at all is not a browser's
    cross-site request (browsers always send one on a websocket and on a cross-site POST), so it is allowed;
    `null` (a sandboxed frame, a file) is foreign."""
    if value is None or "*" in allowed:
        return True
    return normal_origin(value) in {normal_origin(a) for a in allowed}
