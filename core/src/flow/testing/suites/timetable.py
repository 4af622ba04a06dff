"""The timetable suite: what the scheduler assumes of every timetable.

The author overrides ``timetable_factory``: a callable ``() -> Timetable`` (one configured
instance, e.g. a business-days timetable in Europe/Paris).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from flow.testing.suites.base import ConformanceSuite, abstract_fixture, conformance

START = datetime(2024, 1, 1, tzinfo=UTC)


class TimetableConformance(ConformanceSuite):
    """Subclass and override ``timetable_factory``; claim ``scheduled`` unless it is manual-only."""

    flow_suite = "timetable"

    timetable_factory = abstract_fixture("timetable_factory",
                                         "return a callable () -> a Timetable instance")

    @pytest.fixture
    def timetable(self, timetable_factory: Callable[[], Any]) -> Any:
        return timetable_factory()

    @staticmethod
    def _restriction(catchup: bool = True) -> Any:
        from flow.scheduling.timetables import TimeRestriction

        return TimeRestriction(earliest=START, latest=None, catchup=catchup)

    @conformance(since="0.1")
    def test_it_describes_itself(self, timetable: Any) -> None:
        assert timetable.type_name, "type_name names the TimetableSpec it is registered under"
        assert isinstance(timetable.summary, str) and timetable.summary

    @conformance(since="0.1")
    def test_serialize_is_json_and_deserialize_restores_an_equal_timetable(
            self, timetable: Any) -> None:
        data = json.loads(json.dumps(timetable.serialize()))
        restored = type(timetable).deserialize(data)
        assert restored.serialize() == timetable.serialize()

    @conformance(since="0.1")
    def test_a_manual_run_gets_an_aware_interval_ending_at_or_before_run_after(
            self, timetable: Any) -> None:
        run_after = datetime(2024, 3, 10, 12, 30, tzinfo=UTC)
        interval = timetable.infer_manual_data_interval(run_after)
        assert interval.start.tzinfo is not None and interval.end.tzinfo is not None
        assert interval.start <= interval.end <= run_after

    @conformance("scheduled", since="0.1")
    def test_runs_move_forward_without_overlapping(self, timetable: Any) -> None:
        last = None
        now = datetime(2025, 1, 1, tzinfo=UTC)
        for _ in range(5):
            info = timetable.next_dagrun_info(last, self._restriction(), now=now)
            assert info is not None, "a schedulable timetable stopped producing runs"
            interval = info.data_interval
            assert interval.start.tzinfo is not None
            assert interval.start <= interval.end <= info.run_after
            if last is not None:
                assert interval.start >= last.end, "intervals overlap or go backwards"
            assert interval.start >= START, "a run before the restriction's earliest date"
            last = interval

    @conformance("scheduled", since="0.1")
    def test_without_catchup_the_next_run_is_recent(self, timetable: Any) -> None:
        now = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
        info = timetable.next_dagrun_info(None, self._restriction(catchup=False), now=now)
        assert info is not None
        assert info.data_interval.end >= datetime(2024, 6, 15, tzinfo=UTC), (
            "catchup=False started from the earliest date instead of from now")

    @conformance(since="0.1")
    def test_can_be_scheduled_says_whether_a_first_run_comes(self, timetable: Any) -> None:
        info = timetable.next_dagrun_info(None, self._restriction(),
                                          now=datetime(2025, 1, 1, tzinfo=UTC))
        assert (info is not None) == bool(timetable.can_be_scheduled)
