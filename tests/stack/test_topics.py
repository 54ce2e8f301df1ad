"""stack/topics.py: the durability the chat's topics are created with."""

from __future__ import annotations

from stack.topics import min_insync_for


def test_acknowledged_writes_survive_one_broker_loss_when_there_are_replicas_to_spare():
    # acks=all waits for min.insync.replicas copies: 2 of 3 lets one broker go without refusing writes
    assert [min_insync_for(rf) for rf in (1, 2, 3, 5)] == [1, 1, 2, 2]
