"""Several processes appending at once never fork the chain, on every database."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time

from flow_audit import store
from flow_audit.chain import verify

WRITER = """
import sys, time
from flow_audit import store
from flow_audit.chain import Entry

name, start_at, batches = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
engine = store.writer_engine()
store.ensure_tables(engine)
while time.time() < start_at:
    time.sleep(0.001)
for n in range(batches):
    store.append(engine, [Entry("user_action", name, "test.append", f"{name}-{n}-{i}", {"i": i},
                                source="cli") for i in range(n % 3 + 1)], "")
engine.dispose()
"""

PROCESSES, BATCHES = 4, 25


def test_concurrent_writers_never_fork_the_chain(db_url: str) -> None:
    start_at = time.time() + 2.0  # every writer connected and waiting before the first append
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"writer{n}", str(start_at),
                                 str(BATCHES)], env=dict(os.environ), stderr=subprocess.PIPE,
                                text=True) for n in range(PROCESSES)]
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors

    engine = store.writer_engine()
    try:
        records = list(store.walk(engine))
        verdict = verify(iter(records), store.head(engine), "")
    finally:
        engine.dispose()
    per_writer = sum(n % 3 + 1 for n in range(BATCHES))
    assert verdict.ok, verdict.message
    assert [r.seq for r in records] == list(range(1, PROCESSES * per_writer + 1))
    assert len({r.target for r in records}) == len(records)  # each entry exactly once
    actors = [r.actor for r in records]
    # the writers really overlapped: the chain interleaves them
    assert sum(a != b for a, b in itertools.pairwise(actors)) >= PROCESSES
