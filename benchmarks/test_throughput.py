"""Throughput under pytest-benchmark: ``pytest benchmarks --benchmark-only``.

Each test simulates the default scenario resized to ``customers`` x ``DAYS`` days with
one implementation (see :mod:`benchmarks.impls`); tests of the same size share a
benchmark group, so pytest-benchmark prints them side by side. ``extra_info`` carries
the customer-days, so throughput is ``customer_days / mean``. The kernels are compiled
before anything is timed (``conftest.py``) and every test has a warm-up round.
``python -m benchmarks`` gives the full table with ratios, memory and targets.
"""

import pytest

from . import impls
from .suite import thread_counts

DAYS = 30


def _bench(benchmark, name, customers, threads=1, rounds=3):
    sc = impls.scenario(customers, DAYS)
    benchmark.group = f"{customers:,} customers x {DAYS} days"
    benchmark.extra_info.update(implementation=name, customers=customers, days=DAYS, threads=threads, customer_days=customers * DAYS)
    benchmark.pedantic(impls.RUN[name], args=(sc, threads), rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("threads", thread_counts())
@pytest.mark.parametrize("customers", [10_000, 100_000, 1_000_000])
def test_kernel(benchmark, customers, threads):
    _bench(benchmark, impls.KERNEL, customers, threads)


@pytest.mark.parametrize("customers", [10_000, 100_000, 1_000_000])
def test_numpy(benchmark, customers):
    _bench(benchmark, impls.NUMPY, customers)


@pytest.mark.parametrize("customers", [1_000, 10_000])
def test_python(benchmark, customers):
    _bench(benchmark, impls.PYTHON, customers)


@pytest.mark.parametrize("customers", [1_000, 10_000])
def test_mesa(benchmark, customers):
    _bench(benchmark, impls.MESA, customers, rounds=2)
