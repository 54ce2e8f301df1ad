"""bench/feedback.py against the running stack: what it times is what the user got (a warning, a block, an
unblock), in the API and in the real UI."""

from __future__ import annotations

import pytest
import requests

from bench import feedback

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_notices_are_timed_from_each_post_to_the_users_notice_and_the_user_ends_unblocked(chat_stack):
    lines: list[str] = []
    result = feedback.measure_notices(chat_stack.api_url, chat_stack.admin_token, users=1, progress=lines.append)

    assert result["users"] == 1
    assert len(result["warning_latency_ms"]["samples"]) == 2  # strikes 1 and 2
    for key in ("warning_latency_ms", "blocked_notice_ms", "unblock_latency_ms", "unblock_read_ms"):
        figure = result[key]
        assert all(ms > 0 for ms in figure["samples"]), (key, figure)
        assert figure["max"] == max(figure["samples"])
    [author] = result["authors"]
    assert len(lines) == 1 and lines[0].startswith(author)
    user = requests.get(f"{chat_stack.api_url}/users/{author}", timeout=10).json()
    assert user["is_blocked"] is False and user["strikes"] == 0  # the unblock cleared them
    notices = requests.get(
        f"{chat_stack.api_url}/users/{author}/notices",
        headers={"Authorization": f"Bearer {chat_stack.admin_token}"},
        timeout=10,
    ).json()["notices"]
    assert [n["kind"] for n in notices] == ["warning", "warning", "blocked", "unblocked"]


@pytest.mark.timeout(900)
def test_the_block_in_the_ui_is_timed_on_the_pages_clock_and_the_user_is_blocked(chat_stack, tmp_path):
    result = feedback.measure_block_ui(chat_stack.ui_url, chat_stack.api_url, tmp_path, users=1)

    [ms] = result["samples"]
    assert ms > 0 and result["p50"] == result["max"] == ms
    [author] = result["authors"]
    user = requests.get(f"{chat_stack.api_url}/users/{author}", timeout=10).json()
    assert user["is_blocked"] is True and user["strikes"] >= 3
