"""The channel between a supervised try and its supervisor, over real pipes: this test plays
the supervisor's side of the protocol (JSON lines, one answer per request)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from flow.execution import channel as channel_module
from flow.execution.channel import Lines, SupervisorChannel, SupervisorGone, ask


class Cut(Exception):
    pass


@pytest.fixture
def pipes() -> Iterator[tuple[SupervisorChannel, Lines, int]]:
    """A channel in this process; the supervisor's ends: its reader of requests and its
    writer of answers."""
    request_read, request_write = os.pipe()
    answer_read, answer_write = os.pipe()
    channel = SupervisorChannel(request_write, Lines(answer_read))
    yield channel, Lines(request_read), answer_write
    channel_module._current = None
    for fd in (request_read, request_write, answer_read, answer_write):
        try:
            os.close(fd)
        except OSError:
            pass


def _answer(fd: int, message: dict[str, object]) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


def test_a_request_gets_its_answer_and_an_error_is_raised(
        pipes: tuple[SupervisorChannel, Lines, int]) -> None:
    channel, requests, answers = pipes
    _answer(answers, {"value": [["up", -1, "41"]]})
    assert channel.request("xcom_get", task_ids=["up"]) == [["up", -1, "41"]]
    assert requests.next() == {"request": "xcom_get", "task_ids": ["up"]}
    _answer(answers, {"error": "OperationalError: the database is gone"})
    with pytest.raises(RuntimeError, match="the database is gone"):
        channel.request("variable_get", key="k")
    assert channel.open  # an error answer leaves the exchange in step


def test_a_supervisor_that_closed_the_pipe_closes_the_channel(
        pipes: tuple[SupervisorChannel, Lines, int]) -> None:
    channel, _, answers = pipes
    os.close(answers)
    channel.install()
    assert ask("variable_get", key="k") == (False, None)
    assert not channel.open
    with pytest.raises(SupervisorGone):
        channel.request("variable_get", key="k")


def test_an_exchange_cut_short_closes_the_channel_so_its_late_answer_is_never_misread(
        pipes: tuple[SupervisorChannel, Lines, int]) -> None:
    channel, requests, answers = pipes

    def cut(*_: object) -> None:
        raise Cut()

    previous = signal.signal(signal.SIGALRM, cut)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(Cut):
            channel.request("xcom_get", task_ids=["slow"])  # no answer comes in time
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _answer(answers, {"value": "the late answer"})
    channel.install()
    assert ask("variable_get", key="k") == (False, None)
    assert requests.next() == {"request": "xcom_get", "task_ids": ["slow"]}  # nothing more


def test_only_the_main_thread_asks(pipes: tuple[SupervisorChannel, Lines, int]) -> None:
    channel, requests, answers = pipes
    channel.install()
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(ask("variable_get", key="k")))
    thread.start()
    thread.join()
    assert found == [(False, None)]
    assert channel.open  # the main thread still may
    _answer(answers, {"value": "v"})
    assert ask("variable_get", key="k") == (True, "v")
    assert requests.next() == {"request": "variable_get", "key": "k"}


def test_without_a_channel_nobody_is_asked() -> None:
    channel_module._current = None
    assert ask("variable_get", key="k") == (False, None)
