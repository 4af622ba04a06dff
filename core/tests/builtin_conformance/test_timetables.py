"""The builtin timetables pass the timetable suite, strictly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from flow.testing import TimetableConformance


class TestCronTimetable(TimetableConformance):
    claims = {"scheduled"}
    distribution = "flow-core"

    @pytest.fixture
    def timetable_factory(self) -> Callable[[], Any]:
        from flow.scheduling.timetables import CronTimetable

        return lambda: CronTimetable("30 6 * * 1-5", "Europe/Paris")


class TestDeltaTimetable(TimetableConformance):
    claims = {"scheduled"}
    distribution = "flow-core"

    @pytest.fixture
    def timetable_factory(self) -> Callable[[], Any]:
        from flow.scheduling.timetables import DeltaTimetable

        return lambda: DeltaTimetable(timedelta(hours=6))


class TestNullTimetable(TimetableConformance):
    distribution = "flow-core"

    @pytest.fixture
    def timetable_factory(self) -> Callable[[], Any]:
        from flow.scheduling.timetables import NullTimetable

        return NullTimetable
