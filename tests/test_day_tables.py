"""The fused day-table kernel (``cvj.kernels.tables.outcomes``) against its NumPy
statement (``cvj.model._outcomes``): bit for bit, on drawn hazards with the edge cases
the tables hold (no hazard at all, no repeat purchase, no unsubscribe, a certain event),
and on the tables of real scenarios."""

import numpy as np
import pytest

import cvj
from cvj.kernels.tables import outcomes
from cvj.model import _outcomes, channel_reach, compile_scenario, day_tables, hazard


def fused(levels, adv, lam, uns, rho, blocks=1):
    G, L = levels.shape
    W, C = adv.shape[1:]
    rows = blocks * G * L * W
    thr = np.zeros((rows, C), np.uint64)
    cuts = [np.full((rows, C), np.nan) for _ in range(3)]
    for j in range(blocks):
        outcomes(levels, adv * (j + 1), lam, uns, rho, j * G * L * W, thr, *cuts)
    return thr, *cuts


@pytest.mark.parametrize("seed", range(5))
def test_fused_tables_equal_the_numpy_statement_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    G, L, W, C = 3, 16, 4, 37

    def sparse(*shape):
        x = rng.exponential(0.05, shape) * (rng.random(shape) < 0.6)
        x[..., :3] = 0.0  # columns where nothing can happen at all
        return x

    levels = rng.lognormal(0.0, 0.5, (G, L))
    adv, lam, uns = sparse(G, W, C), sparse(G, C), sparse(G, W, C)
    rho = sparse(C)
    rho[5] = float(hazard(1.0))  # a certain event (a subscription's bill)
    got = fused(levels, adv, lam, uns, rho, blocks=2)
    for j in range(2):
        want = _outcomes(levels[:, :, None, None] * (adv * (j + 1))[:, None, :, :],
                         lam[:, None, None, :], uns[:, None, :, :], rho[None, None, None, :])
        rows = slice(j * G * L * W, (j + 1) * G * L * W)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g[rows], w)
    assert (got[0][:, 5] == 2**32 - 1).all()  # certain: every draw but the top one hits


@pytest.mark.parametrize("overrides", [
    {},  # the default: referred customers' rows too
    {"referrals.referred_conversion": 1.0, "channels.referral_programme.friend_discount": 0.0},
])
def test_day_tables_of_the_default_shop_are_the_numpy_ones(overrides):
    cm = compile_scenario(cvj.load_scenario(None, {"market.customers": 5000, **overrides}))
    e = cvj.engine.Engine(cm)
    for _ in range(3):
        e.step()
    reach = channel_reach(cm, e.counts, e.stock, cm.budget[4], e.cells)
    t = day_tables(cm, e.counts, reach, 4)
    n = day_tables(cm, e.counts, reach, 4, numpy=True)
    assert t.thr.shape == (cm.n_rows, cm.layout.n_cols) and (cm.ref_block > 0) == (not overrides)
    for name in ("thr", "cut_adv", "cut_lapse", "cut_unsub"):
        np.testing.assert_array_equal(getattr(t, name), getattr(n, name), err_msg=name)
