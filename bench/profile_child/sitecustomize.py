"""Loaded by the local executor's workers when ``bench/executor.py --profile FILE`` puts this
folder on their ``PYTHONPATH``: the first try's child that finds no FILE yet writes a cProfile of
its run (from its fork until its end is reported) there. Nothing of flow is changed for it."""

import os

_PATH = os.environ.get("FLOW_BENCH_PROFILE_CHILD")
if _PATH:
    import flow.execution.supervisor as _supervisor

    _child_wait = _supervisor._child_wait

    def _profiled(*args, **kwargs):  # type: ignore[no-untyped-def]
        import cProfile

        profile = cProfile.Profile()
        try:
            return profile.runcall(_child_wait, *args, **kwargs)
        finally:
            try:
                with open(_PATH, "xb") as handle:  # the first child only
                    profile.create_stats()
                    import marshal

                    marshal.dump(profile.stats, handle)
            except FileExistsError:
                pass

    _supervisor._child_wait = _profiled
