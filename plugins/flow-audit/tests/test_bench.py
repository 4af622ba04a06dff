"""``bench/audit.py`` end to end, once each side: a real ``flow scheduler`` runs fanout-200 with
the plugin recording every state change, and the chain it leaves verifies. Its timings are
printed, not asserted; what is asserted is that the benchmark still runs and that every one of
the 202 tasks' transitions (scheduled, queued, running, success) reached the chain."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "audit.py"


def test_the_overhead_benchmark_runs_and_records_every_transition(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("FLOW__", "FLOW_CONN_", "FLOW_VAR_"))}
    env["FLOW_HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, str(BENCH), "--repeat", "1"], env=env,
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"audit records per run \(chain verified\)\s+(\d+)", result.stdout)
    assert match, result.stdout
    # 202 tasks x 4 transitions, the run's own (queued -> running -> success) besides.
    assert int(match.group(1)) >= 202 * 4 + 2, result.stdout
