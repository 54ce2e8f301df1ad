"""api/users.py: a user's record, their notices (for them or a moderator), the moderators' unblock (no broker)."""

from __future__ import annotations

from tests.api.conftest import ADMIN, make_app
from tests.api.test_notices import notice


def test_notices_are_for_their_user_or_a_moderator(client, ana):
    assert client.get("/users/ana/notices").status_code == 401
    assert client.get("/users/ana/notices", headers=ana).get_json()["notices"] == []
    other = client.get("/users/bob/notices", headers=ana)
    assert other.status_code == 403 and "only read your own notices" in other.get_json()["error"]
    assert client.get("/users/bob/notices", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_unblock_needs_the_moderators_token(client, ana, tmp_path):
    assert client.post("/users/ana/unblock").status_code == 401
    response = client.post("/users/ana/unblock", headers=ana)
    assert (response.status_code, response.get_json()) == (
        403,
        {
            "error": "this needs a moderator's token (POST /moderators/sign_in) or CHAT_ADMIN_TOKEN",
            "code": "moderator_token_required",
        },
    )
    unknown = client.post("/users/nobody/unblock", headers={"Authorization": f"Bearer {ADMIN}"})
    assert (unknown.status_code, unknown.get_json()) == (
        404,
        {"error": "unknown user 'nobody': no message from them has been recorded yet", "code": "unknown_user"},
    )
    with make_app(tmp_path, ADMIN_TOKEN="").test_client() as off:
        response = off.post("/users/ana/unblock", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403 and "CHAT_ADMIN_TOKEN" in response.get_json()["error"]


def test_an_unknown_user_is_a_404(client):
    response = client.get("/users/nobody")
    assert (response.status_code, response.get_json()) == (
        404,
        {"error": "unknown user 'nobody': no message from them has been recorded yet", "code": "unknown_user"},
    )


def test_an_unblock_with_kafka_down_is_a_503_and_a_user_who_is_not_blocked_can_be_unblocked(client):
    """README: unblock answers 503 when Kafka is unavailable (nothing was sent). The user has a warning, no
    block: the unblock is accepted as far as Kafka (clearing strikes needs no block), so only Kafka refuses it."""
    client.application.extensions["chat_moderation"].notices.add_record(notice("ana", "warning", 1, "m1", 1), [])
    assert {k: v for k, v in client.get("/users/ana").get_json().items() if k in ("strikes", "is_blocked")} == {
        "strikes": 1,
        "is_blocked": False,
    }
    response = client.post("/users/ana/unblock", headers={"Authorization": f"Bearer {ADMIN}"})
    assert (response.status_code, response.get_json()) == (
        503,
        {
            "error": f"Kafka is unavailable at {client.application.config['KAFKA_BOOTSTRAP']}; try again shortly",
            "code": "kafka_unavailable",
        },
    )
