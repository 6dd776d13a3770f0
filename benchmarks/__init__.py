"""Benchmarks of the journey engine against NumPy, pure-Python and Mesa versions of the
same model (issues 6 and 11): the model with memory (the format-2 default), the
format-1 shop and its pure-Mesa reference, and the cost of each new feature.

- ``python -m benchmarks [--quick | --full] --out DIR``: the side-by-side table, memory,
  cold start and targets (:mod:`benchmarks.suite`);
- ``pytest benchmarks --benchmark-only``: the same implementations under
  pytest-benchmark, parametrised by customers and threads.
"""
