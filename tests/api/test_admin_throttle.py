"""api/auth.py's GuessThrottle: wrong moderators' tokens from one address end in a 429 with Retry-After, for the
moderator calls and for the notices a moderator may read; a right token in time is answered at once."""

from __future__ import annotations

import pytest

from api.asgi import ChatAsgi
from api.auth import GuessThrottle
from api.errors import ApiError
from tests.api.asgi_client import Request, run
from tests.api.conftest import ADMIN, make_app, sign_in, token_for

WRONG = {"Authorization": "Bearer not-the-moderators-token"}
RIGHT = {"Authorization": f"Bearer {ADMIN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_wrong_guesses_from_one_address_end_in_a_429_for_a_while(tmp_path):
    app = make_app(tmp_path, ADMIN_GUESS_LIMIT=3, ADMIN_LOCKOUT_S=120)
    clock = app.extensions["chat_auth"].guesses.clock = Clock()
    with app.test_client() as client:
        ana = sign_in(client, "ana")
        for _ in range(2):
            assert client.post("/users/ana/unblock", headers=WRONG).status_code == 403
        assert client.get("/users/ana/notices", headers=WRONG).status_code == 401  # a guess here counts too
        locked = client.post("/users/ana/unblock", headers=WRONG)
        assert locked.status_code == 429 and locked.headers["Retry-After"] == "120"
        assert "too many wrong moderators' tokens" in locked.get_json()["error"]
        # the right token does not get through either (the answer would tell the guesser), nor a moderator read
        assert client.post("/users/nobody/unblock", headers=RIGHT).status_code == 429
        assert client.get("/users/ana/notices", headers=RIGHT).status_code == 429
        # the user's own session is no guess: it is not held up
        assert client.get("/users/ana/notices", headers=ana).status_code == 200
        other = client.post("/users/nobody/unblock", headers=RIGHT, environ_base={"REMOTE_ADDR": "10.0.0.7"})
        assert other.status_code == 404  # another address is not locked out: the moderator's token works
        clock.now += 60
        assert client.post("/users/nobody/unblock", headers=RIGHT).headers["Retry-After"] == "60"
        clock.now += 61
        assert client.post("/users/nobody/unblock", headers=RIGHT).status_code == 404


def test_guesses_through_the_native_notices_door_count_and_are_held_off_too(tmp_path):
    """GET /users/<a>/notices runs on the event loop (api/asgi.py): a wrong token there counts as on the Flask door."""
    asgi = ChatAsgi(make_app(tmp_path, ADMIN_GUESS_LIMIT=2, ADMIN_LOCKOUT_S=90))
    ana = token_for(asgi.flask.test_client(), "ana")

    def notices(token: str, client: str = "10.0.0.1"):
        headers = [(b"authorization", f"Bearer {token}".encode())]
        return run(asgi, Request("GET", "/users/ana/notices", headers=headers, client=(client, 40000)))

    assert [notices("wrong-guess").status for _ in range(2)] == [401, 401]
    locked = notices(ADMIN)  # the right token, once the address is locked out
    assert locked.status == 429 and locked.headers["retry-after"] == "90"
    assert notices(ana).status == 200  # the user's own session is no guess
    assert notices(ADMIN, client="10.0.0.2").status == 200  # another address is not held off


def test_a_right_token_in_time_is_answered_at_once_and_forgets_the_misses(tmp_path):
    app = make_app(tmp_path, ADMIN_GUESS_LIMIT=3)
    with app.test_client() as client:
        for _ in range(5):  # a moderator who mistypes twice, then gets it right: never locked out
            for _ in range(2):
                assert client.post("/users/nobody/unblock", headers=WRONG).status_code == 403
            assert client.post("/users/nobody/unblock", headers=RIGHT).status_code == 404
        assert client.get("/health").get_json()  # sizes are reported without error


def test_misses_age_out_of_the_window_and_memory_is_bounded():
    clock = Clock()
    throttle = GuessThrottle(limit=3, window_s=10, lockout_s=30, clock=clock)
    for _ in range(2):
        throttle.missed("a")
    clock.now += 11  # the two misses are older than the window
    throttle.missed("a")
    throttle.check("a")
    throttle.missed("a")
    throttle.missed("a")
    with pytest.raises(ApiError) as locked:
        throttle.check("a")
    assert locked.value.status == 429 and locked.value.headers == {"Retry-After": "30"}
    throttle.MAX_CLIENTS = 5
    for n in range(50):
        throttle.missed(f"10.0.0.{n}")
    assert throttle.sizes()["admin_guess_clients"] <= 5
    with pytest.raises(ApiError):  # a lockout outlives the forgetting of misses
        throttle.check("a")


def test_the_api_refuses_a_short_moderators_token(tmp_path):
    with pytest.raises(SystemExit, match="CHAT_ADMIN_TOKEN must be at least 16 characters, got 5"):
        make_app(tmp_path, ADMIN_TOKEN="admin")
