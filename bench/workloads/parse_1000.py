"""parse-1000: writes 1000 DAG files of 10 no-op tasks each into a folder (not committed)."""

from __future__ import annotations

from pathlib import Path

SOURCE = '''from datetime import datetime

from flow import DAG
from flow.operators import PythonOperator


def noop():
    return None


with DAG("bench_parse_{index:04d}", schedule=None, start_date=datetime(2024, 1, 1)):
    previous = None
    for i in range(10):
        task = PythonOperator(task_id=f"t{{i}}", python_callable=noop)
        if previous is not None:
            previous >> task
        previous = task
'''


def write_dag_files(folder: Path, count: int = 1000) -> list[Path]:
    """Write ``count`` DAG files, one DAG of 10 chained no-op tasks each, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"parse_{index:04d}.py"
        path.write_text(SOURCE.format(index=index))
        paths.append(path)
    return paths
