"""Whether this process is a forked child (a task's try), noticed at the fork itself.

Imported by ``plugin.py``, so the fork handler is in place in every process that loaded the
plugin before it forked, even if the child records the process's first event. The handler only
notes the fork: the recorder starts over at the child's first record (most children have none).
"""

from __future__ import annotations

import os

forked = False


def _after_fork_in_child() -> None:
    global forked
    forked = True
    import sys

    recorder = sys.modules.get("flow_audit.recorder")  # only if the parent recorded
    if recorder is not None:
        recorder.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
