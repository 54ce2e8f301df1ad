"""Repeated-message spam on the real stack: an API host with the product's settings (bench/flood.py's) on the
stack's broker and warehouse (the stack's own API runs with the rule out of reach), the real relay and ledger:
readers never get the third copy, Delta records it as spam with its reason and a spam strike, and the sender is
told."""

from __future__ import annotations

import pytest
import requests

from bench.flood import limited_api
from tests.stack.running import delta_rows, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def product_api(chat_stack, tmp_path_factory):
    # one worker: the copies are judged in one process, so the third is marked whatever the tail's lag
    with limited_api(chat_stack, tmp_path_factory.mktemp("api-spam"), workers=1) as url:
        yield url


def test_the_third_copy_is_withheld_from_readers_recorded_as_spam_and_a_spam_strike(chat_stack, product_api):
    api = product_api
    tokens = {}
    for name in ("spammer", "reader"):
        answer = requests.post(f"{api}/sessions", json={"author": name}, timeout=30)
        assert answer.status_code == 201, answer.text
        tokens[name] = {"Authorization": f"Bearer {answer.json()['token']}", "Accept-Language": "en"}
    texts = [
        "Compra monedas en example.com",
        "compra   MONEDAS en example.com!",
        "Compra monedas en example.com",
        "hola",
    ]
    ids = []
    for text in texts:
        answer = requests.post(f"{api}/messages", json={"data": text}, headers=tokens["spammer"], timeout=30)
        assert answer.status_code == 202, answer.text  # a spam copy is accepted like any message
        ids.append(answer.json()["id"])

    def served() -> list[str]:
        answer = requests.get(f"{api}/messages", params={"limit": 500}, headers=tokens["reader"], timeout=30)
        assert answer.status_code == 200, answer.text
        return [m["id"] for m in answer.json()["messages"]]

    # the copy after the third is a fresh message: once it is served, the third has been relayed before it
    seen = wait_until(lambda: ids[3] in (s := served()) and s)
    assert [i in seen for i in ids] == [True, True, False, True]

    rows = wait_until(lambda: all(r := [delta_rows(chat_stack, "messages", message_id=i) for i in ids]) and r)
    assert [(row["verdict"], row["spam_reason"]) for [row] in rows] == [
        ("clean", None),
        ("clean", None),
        ("spam", "repeat:3/30s"),
        ("clean", None),
    ]
    [strike] = wait_until(lambda: delta_rows(chat_stack, "strikes", message_id=ids[2]))
    assert (strike["author"], strike["strike_number"], strike["category"]) == ("spammer", 1, "spam")
    notices = requests.get(f"{api}/users/spammer/notices", headers=tokens["spammer"], timeout=30).json()["notices"]
    assert [(n["kind"], n["strike"], n.get("category"), n["message_id"]) for n in notices] == [
        ("warning", 1, "spam", ids[2])
    ]
