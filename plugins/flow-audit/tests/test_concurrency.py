"""Several processes appending at once never fork the chain, on every database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flow_audit import store
from flow_audit.chain import verify

WRITER = """
import sys, time
from flow_audit import store
from flow_audit.chain import Entry

from pathlib import Path

name, ready, batches, writers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
engine = store.writer_engine()
store.ensure_tables(engine)
(ready / name).touch()
while len(list(ready.iterdir())) < writers:  # every writer connected before the first append
    time.sleep(0.001)
started = time.time()
for n in range(batches):
    store.append(engine, [Entry("user_action", name, "test.append", f"{name}-{n}-{i}", {"i": i},
                                source="cli") for i in range(n % 3 + 1)], "")
(ready.parent / f"{name}.window").write_text(f"{started} {time.time()}")
engine.dispose()
"""

PROCESSES, BATCHES = 4, 25


def test_concurrent_writers_never_fork_the_chain(db_url: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"writer{n}", str(ready),
                                 str(BATCHES), str(PROCESSES)], env=dict(os.environ),
                                stderr=subprocess.PIPE, text=True) for n in range(PROCESSES)]
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
    # the writers really overlapped: every one had begun appending before any had finished
    # (how the appends interleave is the database's lock fairness, not something to assert)
    windows = [tuple(map(float, path.read_text().split()))
               for path in tmp_path.glob("*.window")]
    assert len(windows) == PROCESSES
    assert max(start for start, _ in windows) < min(end for _, end in windows)
