"""The relay's delivery tags: unique among the bus's unacked messages, a forked job
process included (kombu keys its unacked hash by tag: two equal tags would lose one)."""
from __future__ import annotations

import json
import os

from shared.bus.kombu_redis import delivery_tag, message_document


def test_tags_do_not_repeat() -> None:
    tags = [delivery_tag() for _ in range(10_000)]
    assert len(set(tags)) == len(tags)


def test_a_forked_process_draws_tags_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a prefork job process would tag next
        os.write(write, json.dumps([delivery_tag() for _ in range(3)]).encode())
        os._exit(0)
    os.close(write)
    child = json.loads(os.read(read, 65536))
    os.waitpid(pid, 0)
    parent = [delivery_tag() for _ in range(3)]
    assert not set(child) & set(parent)
    assert child[0].split(".")[0] != parent[0].split(".")[0]


def test_the_document_carries_a_fresh_tag() -> None:
    first, second = (json.loads(message_document('{"a": 1}', "baitiao.events", "x"))["properties"]["delivery_tag"]
                     for _ in range(2))
    assert first != second
