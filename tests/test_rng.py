"""The counter-based generator (kernels/rng.py): uniform, independent, collision-free.

Every draw is ``mix64(day_key(stream, day, purpose) + customer * GOLDEN)``. These tests
check the laws the simulation relies on:

- uniformity of the draws (chi-square on 1024 bins and Kolmogorov-Smirnov on the
  53-bit uniforms; chi-square on the top 32 bits the event test reads and on the top 4
  bits the responsiveness level reads; the frequency of each of the 64 bits);
- no dependence between neighbouring keys: adjacent customers, adjacent days, the four
  purposes of one customer-day, adjacent replications and adjacent seeds (Pearson
  correlation, |r| sqrt(n) ~ N(0, 1), and a 32 x 32 chi-square of the pairs, which also
  sees non-linear dependence);
- different purposes never collide (a proof, checked on many keys);
- the same checks reject generators known to be bad (they can fail).

All statistical checks form one family at FAMILY_ALPHA = 0.001 (Bonferroni).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cvj.kernels import rng as R
from tests.stat_checks import NO_JIT, per_test_alpha, two_sided_z

N_DRAWS = 20_000 if NO_JIT else 1_000_000
BINS = 64 if NO_JIT else 1024  # expected count per bin n / bins >= 5 either way
GRID = 8 if NO_JIT else 32  # pairs: GRID^2 cells, n / GRID^2 ~ 1000 expected per cell
PURPOSES = (R.EVENT, R.CHOICE, R.INIT_STAGE, R.INIT_LEVEL)
KEY = np.uint64(R.stream_key(np.uint64(2026), np.uint64(0)))
DAY = 17

# the family: uniformity (4 purposes x (chi2, KS) + top-32 + top-4 + 64 bits + days +
# streams x (chi2, KS)) and pairs (12 pairings x (correlation, chi2))
N_UNIFORMITY = 4 * 2 + 2 + 64 + 2 * 2
N_PAIRS = 12 * 2
ALPHA = per_test_alpha(N_UNIFORMITY + N_PAIRS)
Z = two_sided_z(ALPHA)


def customers(n, start=0):
    return np.arange(start, start + n, dtype=np.uint64)


def chi2_uniform_p(counts) -> float:
    """p-value of counts against equal cell probabilities (df = cells - 1)."""
    counts = np.asarray(counts, dtype=np.float64)
    e = counts.sum() / counts.size
    x2 = ((counts - e) ** 2 / e).sum()
    return float(stats.chi2.sf(x2, counts.size - 1))


def uniformity_pvalues(u) -> dict:
    return {
        "chi2": chi2_uniform_p(np.bincount((u * BINS).astype(np.int64), minlength=BINS)),
        "ks": float(stats.kstest(u, "uniform").pvalue),
    }


def pair_pvalues(u, v) -> dict:
    """Independence of two uniform samples drawn for the same keys (paired)."""
    n = u.size
    r = float(np.corrcoef(u, v)[0, 1])
    cells = (u * GRID).astype(np.int64) * GRID + (v * GRID).astype(np.int64)
    return {
        "corr": float(2 * stats.norm.sf(abs(r) * np.sqrt(n))),  # r sqrt(n) ~ N(0, 1) under H0
        "chi2": chi2_uniform_p(np.bincount(cells, minlength=GRID * GRID)),
    }


def _assert_all(pvals: dict, what: str):
    bad = {k: v for k, v in pvals.items() if v < ALPHA}
    assert not bad, f"{what}: p below {ALPHA:.1e}: {bad}"


# --------------------------------------------------------------------------- uniformity


@pytest.mark.parametrize("purpose", PURPOSES)
def test_uniform_over_customers(purpose):
    u = R.uniforms(KEY, customers(N_DRAWS), DAY, purpose)
    assert u.min() >= 0.0 and u.max() < 1.0
    _assert_all(uniformity_pvalues(u), f"purpose {purpose}")


def test_bits_the_kernel_reads_are_uniform():
    """The event test compares the top 32 bits with a threshold; the level is the top 4."""
    b = R.bits(KEY, customers(N_DRAWS), DAY, R.EVENT)
    top32 = (b >> np.uint64(32)).astype(np.float64) / 2.0**32
    p = {"top 32 bits": chi2_uniform_p(np.bincount((top32 * BINS).astype(np.int64), minlength=BINS))}
    levels = R.bits(KEY, customers(N_DRAWS), 0, R.INIT_LEVEL) >> np.uint64(60)
    p["level (top 4 bits)"] = chi2_uniform_p(np.bincount(levels.astype(np.int64), minlength=16))
    _assert_all(p, "kernel bits")


def test_every_bit_is_a_fair_coin():
    """Count of ones in each bit position: |ones - n/2| <= z sqrt(n/4) (64 tests)."""
    b = R.bits(KEY, customers(N_DRAWS), DAY, R.CHOICE)
    n = b.size
    for k in range(64):
        ones = int(((b >> np.uint64(k)) & np.uint64(1)).sum())
        assert abs(ones - n / 2) <= Z * np.sqrt(n / 4), f"bit {k}: {ones} ones in {n}"


def test_uniform_over_days_and_over_streams():
    n_days = 65_535 if not NO_JIT else 5_000
    c = 12345
    # draws come back as Python ints; wrap them, or numba types those above 2^63 as int64
    u_days = np.array([R.to_unit(np.uint64(R.draw(KEY, c, d, R.EVENT))) for d in range(n_days)])
    _assert_all(uniformity_pvalues(u_days), "one customer over days")
    n_seeds = 100_000 if not NO_JIT else 5_000
    u_seeds = np.array(
        [
            R.to_unit(np.uint64(R.draw(np.uint64(R.stream_key(np.uint64(s), np.uint64(0))), c, DAY, R.EVENT)))
            for s in range(n_seeds)
        ]
    )
    _assert_all(uniformity_pvalues(u_seeds), "one customer-day over seeds")


# --------------------------------------------------------------------------- neighbours


def _neighbour_pairs():
    n = N_DRAWS
    c = customers(n)
    key_r1 = np.uint64(R.stream_key(np.uint64(2026), np.uint64(1)))
    key_s1 = np.uint64(R.stream_key(np.uint64(2027), np.uint64(0)))
    u = {p: R.uniforms(KEY, c, DAY, p) for p in PURPOSES}
    next_customer = R.uniforms(KEY, customers(n, 1), DAY, R.EVENT)
    pairs = {
        "adjacent customers (event)": (u[R.EVENT], next_customer),
        "adjacent customers (choice)": (u[R.CHOICE], R.uniforms(KEY, customers(n, 1), DAY, R.CHOICE)),
        "adjacent days (event)": (u[R.EVENT], R.uniforms(KEY, c, DAY + 1, R.EVENT)),
        "adjacent days (choice)": (u[R.CHOICE], R.uniforms(KEY, c, DAY + 1, R.CHOICE)),
        "day 0 vs day 1": (R.uniforms(KEY, c, 0, R.EVENT), R.uniforms(KEY, c, 1, R.EVENT)),
        "event vs choice": (u[R.EVENT], u[R.CHOICE]),
        "event vs init stage": (u[R.EVENT], u[R.INIT_STAGE]),
        "choice vs init level": (u[R.CHOICE], u[R.INIT_LEVEL]),
        "init stage vs init level": (R.uniforms(KEY, c, 0, R.INIT_STAGE), R.uniforms(KEY, c, 0, R.INIT_LEVEL)),
        "adjacent replications": (u[R.EVENT], R.uniforms(key_r1, c, DAY, R.EVENT)),
        "adjacent seeds": (u[R.EVENT], R.uniforms(key_s1, c, DAY, R.EVENT)),
        "adjacent seeds, init stage": (R.uniforms(KEY, c, 0, R.INIT_STAGE), R.uniforms(key_s1, c, 0, R.INIT_STAGE)),
    }
    assert len(pairs) * 2 == N_PAIRS
    return pairs


@pytest.mark.slow
def test_no_dependence_between_neighbouring_keys():
    for what, (a, b) in _neighbour_pairs().items():
        _assert_all(pair_pvalues(a, b), what)


# --------------------------------------------------------------------------- collisions

MASK = (1 << 64) - 1


def _mix64_inverse(z: int) -> int:
    """The inverse of mix64, which proves mix64 is a bijection of 64-bit integers.

    mix64 is (xorshift 30) -> (x M1) -> (xorshift 27) -> (x M2) -> (xorshift 31). A
    multiplication by an odd constant is invertible mod 2^64 (odd numbers are units);
    ``x ^ (x >> s)`` is invertible by repeating ``y ^ (x >> s)`` (each round fixes
    s more top-down bits). A composition of bijections is a bijection."""

    def unxorshift(y, s):
        x = y
        for _ in range(64 // s + 1):
            x = y ^ (x >> s)
        return x

    m1_inv = pow(int(R._M1), -1, 1 << 64)
    m2_inv = pow(int(R._M2), -1, 1 << 64)
    z = unxorshift(z, 31)
    z = (z * m2_inv) & MASK
    z = unxorshift(z, 27)
    z = (z * m1_inv) & MASK
    return unxorshift(z, 30)


def test_mix64_is_a_bijection():
    rng = np.random.default_rng(4)
    xs = rng.integers(0, 2**63, size=2_000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 2_000, np.uint64)
    for x in [0, 1, MASK, *map(int, xs)]:
        assert _mix64_inverse(int(R.mix64(np.uint64(x)))) == x


def test_purposes_never_collide():
    """For one stream, ``day_key`` is injective in (day, purpose): ``(day << 16) | purpose``
    is injective (purpose < 2^16), ``x -> GOLDEN x + C`` is a bijection mod 2^64 (GOLDEN
    is odd), mix64 is a bijection, and so is ``key ^ .``. So one customer-day's four
    purposes have four different sub-keys, and ``sub_key + customer * GOLDEN`` are four
    different inputs to the bijection mix64: four different draws, for every customer.
    Checked exhaustively on one stream (all days x purposes) and on many random keys."""
    n_days = 65_535 if not NO_JIT else 2_000
    sub = np.array([int(R.day_key(KEY, d, p)) for d in range(n_days) for p in PURPOSES], dtype=np.uint64)
    assert np.unique(sub).size == sub.size
    rng = np.random.default_rng(7)
    c = customers(10_000 if not NO_JIT else 500)
    for _ in range(50):
        key = np.uint64(rng.integers(0, 2**63, dtype=np.uint64) * np.uint64(2) + np.uint64(rng.integers(0, 2)))
        day = int(rng.integers(0, 65_535))
        keys = {int(R.day_key(key, day, p)) for p in PURPOSES}
        assert len(keys) == len(PURPOSES)
        draws = np.stack([R.bits(key, c, day, p) for p in PURPOSES])
        for i in range(len(PURPOSES)):
            for j in range(i + 1, len(PURPOSES)):
                assert not np.any(draws[i] == draws[j])


# --------------------------------------------------------------------------- power


def test_the_checks_reject_bad_generators():
    """The same checks at the same level reject (a) a Weyl sequence (uniform, but each
    draw is a linear function of its neighbour), (b) draws squared by a 1% exponent
    (slightly non-uniform), (c) an unmixed counter whose purpose enters as an additive
    offset (different purposes give shifted copies of one another)."""
    n = N_DRAWS
    i = np.arange(n, dtype=np.float64)
    weyl = (i * 0.6180339887498949) % 1.0
    assert min(pair_pvalues(weyl[:-1], weyl[1:]).values()) < ALPHA
    u = R.uniforms(KEY, customers(n), DAY, R.EVENT)
    if not NO_JIT:  # a 1% distortion needs the full sample to be seen
        assert min(uniformity_pvalues(u**1.01).values()) < ALPHA
    c = customers(n)
    event = R.uniforms(KEY, c, DAY, R.EVENT)
    shifted = R.uniforms(KEY, c + np.uint64(1), DAY, R.EVENT)  # "purpose = customer offset"
    assert min(pair_pvalues(event[1:], shifted[:-1]).values()) < ALPHA  # identical: rejected
