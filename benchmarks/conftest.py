"""pytest-benchmark set-up: compile (or load) every kernel before anything is timed."""

import pytest

from . import impls
from .suite import thread_counts


@pytest.fixture(scope="session", autouse=True)
def warm_jit():
    impls.warm_up(thread_counts())
