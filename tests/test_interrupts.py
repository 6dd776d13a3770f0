"""Ctrl-C and SIGTERM held while the kernels compile and run (cvj.interrupts): never
lost, never inside a day, delivered as the handler in place would have."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

import cvj
from cvj.engine import Engine
from cvj.interrupts import held
from cvj.model import compile_scenario


@pytest.fixture(autouse=True)
def _ctrl_c_raises():
    """Python's own Ctrl-C handler for the test, whatever this process inherited: a
    process started in the background by a shell without job control (``cmd &`` in a
    script) starts with SIGINT ignored, and Python then installs no handler."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_inside_the_block_is_raised_when_it_ends():
    before = signal.getsignal(signal.SIGINT)
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the signal")  # not cut short
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is before


def test_the_handler_in_place_gets_the_signal_once_and_handlers_come_back():
    seen = []
    old = signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    try:
        with held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
        with held():
            pass
        assert seen == [signal.SIGTERM]
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with held():
            os.kill(os.getpid(), signal.SIGTERM)  # ignored before, ignored after
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, old)


def test_outside_the_main_thread_the_block_runs_as_it_is():
    out = []

    def work():
        with held():
            out.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out == [signal.default_int_handler]


def test_a_day_interrupted_in_its_middle_finishes_then_stops(monkeypatch):
    """Ctrl-C while the day kernel runs: the day completes (the engine's state is one
    whole day on), then KeyboardInterrupt; the next day runs as usual."""
    cm = compile_scenario(cvj.load_scenario(None, {"market.customers": 2000, "market.days": 5}))
    e = Engine(cm)
    e.step()
    real = e._k

    class Interrupting:
        def __getattr__(self, name):
            fn = getattr(real, name)
            if name != "advance_day":
                return fn

            def advance_day(*args):
                os.kill(os.getpid(), signal.SIGINT)
                return fn(*args)

            return advance_day

    e._k = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        e.step()
    assert e.day == 2
    e._k = real
    e.step()
    # the same state as a run nobody interrupted
    other = Engine(cm)
    for _ in range(3):
        other.step()
    assert e.day == other.day == 3
    for name in ("stage", "row", "clock", "orders", "revenue"):
        np.testing.assert_array_equal(getattr(e, name), getattr(other, name), err_msg=name)
    np.testing.assert_array_equal(e.history.stages[:4], other.history.stages[:4])
