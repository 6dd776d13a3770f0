"""Benchmarks of the journey engine against NumPy, pure-Mesa and pure-Python versions
of the same model (issue 6).

- ``python -m benchmarks [--quick | --full] --out DIR``: the side-by-side table, memory,
  cold start and targets (:mod:`benchmarks.suite`);
- ``pytest benchmarks --benchmark-only``: the same implementations under
  pytest-benchmark, parametrised by customers and threads.
"""
