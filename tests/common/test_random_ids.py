"""classifier_common.random_ids: version-4 UUIDs from os.urandom read in blocks, never repeated
across a fork."""

from __future__ import annotations

import os
import uuid

import pytest

from classifier_common import random_ids


def test_ids_are_distinct_version_4_uuids_as_32_hex_characters() -> None:
    ids = [random_ids.uuid4_hex() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:300]:
        parsed = uuid.UUID(hex=value)
        assert value == parsed.hex and len(value) == 32
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_one_read_of_the_systems_randomness_serves_256_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    urandom = os.urandom

    def counted(size: int) -> bytes:
        reads.append(size)
        return urandom(size)

    monkeypatch.setattr(random_ids, "_buffer", b"")  # start from an empty block
    monkeypatch.setattr(os, "urandom", counted)
    for _ in range(512):
        random_ids.uuid4_hex()
    assert len(reads) == 2, reads


def test_a_forked_child_never_hands_out_its_parents_ids() -> None:
    random_ids.uuid4_hex()  # the block is read: the child inherits it
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        os.write(write_end, random_ids.uuid4_hex().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_id) == 32
    assert child_id != random_ids.uuid4_hex()
