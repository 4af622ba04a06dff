"""The chain on every database: verify passes on an honest chain and names the record that was
changed, deleted or moved; prune leaves an anchor the rest verifies against; an HMAC key makes
a chain rebuilt without it fail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from flow_audit import store
from flow_audit.chain import Entry, canonical_json, verify


@pytest.fixture
def engine(db_url: str) -> Iterator[Any]:
    engine = store.writer_engine()
    yield engine
    engine.dispose()


def _append(engine: Any, count: int, key: str = "", when: str | None = None) -> None:
    entries = [Entry("user_action", f"user{n}", "variable.update", f"var{n}", {"n": n},
                     source="cli", **({"recorded_at": when} if when else {}))
               for n in range(count)]
    store.append(engine, entries, key)


def _verify(engine: Any, key: str = "") -> Any:
    head = store.head(engine)
    return verify(store.walk(engine), head, key)


def test_an_untouched_chain_verifies(engine: Any) -> None:
    _append(engine, 5)
    _append(engine, 3)

    verdict = _verify(engine)

    assert verdict.ok, verdict.message
    assert verdict.checked == 8 and verdict.head_seq == 8


@pytest.mark.parametrize("key", ["", "k3y"])
def test_records_read_back_hash_to_what_was_sealed(engine: Any, key: str) -> None:
    """The hash is computed from the content JSON assembled at append time; what is read back
    and verified is serialized by ``canonical_json``: the two must be the same bytes, for any
    text and for flow's own (unscrubbed) state-change entries alike."""
    odd = 'caf\u00e9 "quoted" \\ back\tslash \U0001f600 </script>'
    store.append(engine, [
        Entry("user_action", odd, "variable.update", odd, {"z": odd, "a": [1, 2.5, None, True]},
              source="ui", remote_addr="::1"),
        Entry("task_instance_state", "flow", "task_instance.state_changed", "d/r/t",
              {"dag_id": "d", "run_id": odd, "task_id": "t", "map_index": -1,
               "try_number": 1, "previous": None, "current": "running"}, plain=True),
    ], key)

    records = list(store.walk(engine))
    verdict = _verify(engine, key)

    assert verdict.ok, verdict.message
    assert records[0].actor == odd and records[0].details["z"] == odd
    assert records[1].details["run_id"] == odd


def test_a_changed_record_is_named(engine: Any) -> None:
    _append(engine, 6)
    with engine.begin() as connection:
        connection.execute(update(store.audit_record).where(store.audit_record.c.seq == 4)
                           .values(details=canonical_json({"n": 99})))

    verdict = _verify(engine)

    assert not verdict.ok
    assert verdict.bad_seq == 4
    assert "record 4" in verdict.message and "changed" in verdict.message


def test_a_changed_actor_with_a_recomputed_hash_breaks_the_next_link(engine: Any) -> None:
    from flow_audit.chain import digest

    _append(engine, 6)
    [row] = [r for r in store.walk(engine) if r.seq == 3]
    row.actor = "somebody_else"
    forged = digest(row.prev_hash, row.content(), "")
    with engine.begin() as connection:
        connection.execute(update(store.audit_record).where(store.audit_record.c.seq == 3)
                           .values(actor="somebody_else", record_hash=forged))

    verdict = _verify(engine)

    assert not verdict.ok and verdict.bad_seq == 4
    assert "out of order" in verdict.message


def test_a_deleted_record_is_named(engine: Any) -> None:
    _append(engine, 6)
    with engine.begin() as connection:
        connection.execute(delete(store.audit_record).where(store.audit_record.c.seq == 3))

    verdict = _verify(engine)

    assert not verdict.ok and verdict.bad_seq == 3
    assert "record 3 is missing (deleted)" in verdict.message


def test_deleted_last_records_are_named_through_the_chain_head(engine: Any) -> None:
    _append(engine, 6)
    with engine.begin() as connection:
        connection.execute(delete(store.audit_record).where(store.audit_record.c.seq >= 5))

    verdict = _verify(engine)

    assert not verdict.ok and verdict.bad_seq == 5
    assert "records 5..6 are missing" in verdict.message


def test_two_reordered_records_are_named(engine: Any) -> None:
    _append(engine, 6)
    with engine.begin() as connection:
        # swap the positions of records 3 and 4 (through a free number: seq is the key)
        column = store.audit_record.c.seq
        connection.execute(update(store.audit_record).where(column == 3).values(seq=1000))
        connection.execute(update(store.audit_record).where(column == 4).values(seq=3))
        connection.execute(update(store.audit_record).where(column == 1000).values(seq=4))

    verdict = _verify(engine)

    assert not verdict.ok and verdict.bad_seq == 3
    assert "record 3" in verdict.message and "out of order" in verdict.message
    assert "'var3'" in verdict.message  # the record now at position 3 is the one from 4


def test_prune_leaves_an_anchor_and_the_rest_still_verifies(engine: Any) -> None:
    _append(engine, 4, when="2023-12-01T00:00:00.000000Z")
    _append(engine, 3)

    count, anchor = store.prune(engine, "2024-01-01T00:00:00.000000Z", "ops", "")

    assert count == 4 and anchor is not None and anchor.seq == 4
    remaining = list(store.walk(engine))
    assert [r.seq for r in remaining] == [4, 5, 6, 7, 8]
    assert remaining[0].kind == "anchor" and remaining[-1].action == "audit.prune"
    verdict = _verify(engine)
    assert verdict.ok, verdict.message
    assert verdict.anchor_seq == 4


def test_a_forged_anchor_is_named(engine: Any) -> None:
    _append(engine, 4, when="2023-12-01T00:00:00.000000Z")
    _append(engine, 2)
    store.prune(engine, "2024-01-01T00:00:00.000000Z", "ops", "")
    with engine.begin() as connection:
        details = connection.scalar(select(store.audit_record.c.details)
                                    .where(store.audit_record.c.seq == 4))
        connection.execute(update(store.audit_record).where(store.audit_record.c.seq == 4)
                           .values(details=details.replace('"pruned_records":4',
                                                           '"pruned_records":1')))

    verdict = _verify(engine)

    assert not verdict.ok and verdict.bad_seq == 4 and "anchor" in verdict.message


def test_records_deleted_at_the_start_without_an_anchor_are_named(engine: Any) -> None:
    _append(engine, 5)
    with engine.begin() as connection:
        connection.execute(delete(store.audit_record).where(store.audit_record.c.seq <= 2))

    verdict = _verify(engine)

    assert not verdict.ok and verdict.bad_seq == 3
    assert "record 1 is missing" in verdict.message


def test_an_hmac_chain_needs_the_key_and_cannot_be_rebuilt_without_it(engine: Any) -> None:
    from flow_audit.chain import SHA256, digest

    _append(engine, 4, key="k3y")
    assert _verify(engine, "k3y").ok
    assert not _verify(engine, "").ok
    assert not _verify(engine, "other").ok

    # Someone with database access alone recomputes every hash of a changed chain.
    previous = "0" * 64
    honest = list(store.walk(engine))
    with engine.begin() as connection:
        for record in honest:
            record.alg, record.actor, record.prev_hash = SHA256, "mallory", previous
            record.record_hash = digest(previous, record.content(), "")
            connection.execute(update(store.audit_record)
                               .where(store.audit_record.c.seq == record.seq)
                               .values(actor="mallory", alg=SHA256, prev_hash=previous,
                                       record_hash=record.record_hash))
            previous = record.record_hash
        connection.execute(update(store.audit_chain_head).values(record_hash=previous))

    assert _verify(engine, "").ok  # without the key nothing can tell
    verdict = _verify(engine, "k3y")
    assert not verdict.ok and verdict.bad_seq == 1 and "HMAC" in verdict.message
