"""Throughput under pytest-benchmark: ``pytest benchmarks --benchmark-only``.

Each test simulates one scenario of :mod:`benchmarks.impls` resized to ``customers`` x
``DAYS`` days with one implementation: the kernel, NumPy, pure Python and Mesa on the
default (format 2, the model with memory), and the kernel and the pure-Mesa reference
on the format-1 shop. Tests of the same size share a benchmark group, so
pytest-benchmark prints them side by side. ``extra_info`` carries the customer-days,
so throughput is ``customer_days / mean``. The kernels are compiled before anything
is timed (``conftest.py``) and every test has a warm-up round. ``python -m benchmarks``
gives the full table with ratios, feature costs, memory and targets.
"""

import pytest

from . import impls
from .suite import thread_counts

DAYS = 30


def _bench(benchmark, name, customers, threads=1, rounds=3, scenario=impls.DEFAULT):
    sc = impls.scenario(scenario, customers, DAYS)
    benchmark.group = f"{customers:,} customers x {DAYS} days"
    benchmark.extra_info.update(
        implementation=name, scenario=scenario, customers=customers, days=DAYS, threads=threads,
        customer_days=customers * DAYS,
    )
    run = impls.runner(name, scenario)
    benchmark.pedantic(run, args=(sc, threads), rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("scenario", [impls.DEFAULT, impls.FORMAT1])
@pytest.mark.parametrize("threads", thread_counts())
@pytest.mark.parametrize("customers", [10_000, 100_000, 1_000_000])
def test_kernel(benchmark, customers, threads, scenario):
    _bench(benchmark, impls.KERNEL, customers, threads, scenario=scenario)


@pytest.mark.parametrize("customers", [10_000, 100_000, 1_000_000])
def test_numpy(benchmark, customers):
    _bench(benchmark, impls.NUMPY, customers)


@pytest.mark.parametrize("customers", [1_000, 10_000])
def test_python(benchmark, customers):
    _bench(benchmark, impls.PYTHON, customers)


@pytest.mark.parametrize("customers", [1_000, 10_000])
def test_mesa(benchmark, customers):
    _bench(benchmark, impls.MESA, customers, rounds=2)


@pytest.mark.parametrize("customers", [1_000, 10_000])
def test_mesa_reference(benchmark, customers):
    _bench(benchmark, impls.MESA_REFERENCE, customers, rounds=2, scenario=impls.FORMAT1)
