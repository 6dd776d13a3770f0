"""Word of mouth on a network: the kernel against the Mesa reference (sim/reference.py).

The reference's referrers are :class:`mesa.Agent` customers telling contacts on a
:class:`networkx.MultiDiGraph` built from the same contact function, written from
docs/model.md ("Word of mouth") with its own random numbers; the kernel finds referrals
per chunk from counter-based draws and applies them after the day. On one small world
(two segments and two age bands with homophily, clustering, unaware and lapsed friends,
referrers in three stages, a two-sided programme with a referral lift), ``R_KERNEL``
kernel replications and ``R_REFERENCE`` reference runs are compared with two-sample
Hotelling T^2 tests (tests/stat_checks.py) on:

- customers by (segment, age band, stage) at the end of three days;
- the KPIs: money (the programme's commission and friend discount), conversions,
  units of each offer, referred sales, ``referral_share``, ``viral_coefficient`` and
  ``buyers_who_refer``;
- the attribution: moves over the run by (stage moved from, cause), so the referrals of
  unaware and of lapsed people;
- who refers whom: referrals by (referrer's segment and band, friend's segment and band);
- the cascades: referrals by generation and by quarter of the run, chains by size.

Power: the same family rejects the kernel with every referral chance 10% higher, and
with clustering 0.6 -> 0.8. All tests form one family at FAMILY_ALPHA (Bonferroni).

The order of a day (tellings from the state at the start of the day, the day's own
moves, then the referrals in referrer order) is checked exactly in both programs with
moves of daily chance 1, and the reference's own bookkeeping (its graph, the log, the
generations) exactly on one run.
"""

from __future__ import annotations

import copy
from functools import cache

import numpy as np
import pytest

from cvj.engine import Engine, use_threads
from cvj.model import compile_scenario
from cvj.network import network_kpis, referrals_table
from cvj.reference import simulate_reference
from cvj.results import summary as kernel_summary
from cvj.stages import CAUSE_REFERRAL, STAGE_ID
from tests.stat_checks import NO_JIT, hotelling_two_sample, per_test_alpha, scenario

N = 300 if NO_JIT else 2000
R_KERNEL = 10 if NO_JIT else 80
R_REFERENCE = 4 if NO_JIT else 30

WORLD = {
    "format": 2,
    "name": "network",
    "age_bands": ["young", "old"],
    "market": {
        "customers": N,
        "days": 30,
        "seed": 47,
        "initial_stages": {"unaware": 0.75, "aware": 0.05, "lapsed": 0.1, "advocate": 0.07, "promoter": 0.03},
    },
    "segments": {
        "a": {"share": 0.6, "responsiveness_spread": 0.5, "age_shares": {"young": 0.7, "old": 0.3}},
        "b": {"share": 0.4, "advance_multiplier": 0.8, "age_shares": {"young": 0.3, "old": 0.7}},
    },
    "organic": {
        "advance": {"unaware": 0.002, "aware": 0.08, "engaged": 0.1, "subscribed": 0.1, "converted": 0.1,
                    "excited": 0.1, "ascended": 0.1, "advocate": 0.02},
        "lapse": {"aware": 0.02, "engaged": 0.01},
        "reactivation": 0.005,
    },
    "referrals": {
        "model": "network",
        "rates": {"aware": 0.04, "advocate": 0.1, "promoter": 0.2},
        "network": {"contacts": 8, "clustering": 0.6, "segment_homophily": 0.5, "age_homophily": 0.4},
    },
    "channels": {
        "programme": {"pricing": "commission", "commission": 5.0, "friend_discount": 3.0, "referral_lift": 1.5}
    },
    "offers": {
        "lead_magnet": {"unit_cost": 0.2},
        "entry": {"price": 12.0, "unit_cost": 4.0},
        "core": {"price": 80.0, "unit_cost": 30.0, "repeat_rate": 0.02},
    },
}

#: power checks: the kernel's copy of the world changed slightly
POWER = {
    "referral chance x 1.1": {"referrals.rates": {"aware": 0.044, "advocate": 0.11, "promoter": 0.22}},
    "clustering 0.6 -> 0.8": {"referrals.network.clustering": 0.8},
}
TESTS = 7  # three days of stage counts, KPIs, attribution, who refers whom, cascades
ALPHA = per_test_alpha(TESTS * (1 + len(POWER)))

KPIS = ("spend", "revenue", "conversions", "referral_share", "viral_coefficient", "buyers_who_refer")
GENERATIONS = (1, 2, 3, 4)  # the last counts 4 and more
CHAIN_SIZES = (1, 2, 3, 5)  # first size of each bin


def _world(change: dict | None = None) -> dict:
    raw = copy.deepcopy(WORLD)
    for path, value in (change or {}).items():
        node = raw
        *keys, last = path.split(".")
        for k in keys:
            node = node[k]
        node[last] = value
    return raw


def _cascades(day, generation, chain, D):
    """Referrals by generation (1, 2, 3, 4+) and by quarter of the run; chains by size."""
    gen = np.bincount(np.minimum(generation, GENERATIONS[-1]), minlength=GENERATIONS[-1] + 1)[1:]
    quarter = np.bincount(np.minimum((day - 1) * 4 // D, 3), minlength=4)
    sizes = np.bincount(chain) if chain.size else np.zeros(0, np.int64)
    sizes = sizes[sizes > 0]
    chains = np.bincount(np.searchsorted(CHAIN_SIZES, sizes, side="right") - 1, minlength=len(CHAIN_SIZES))
    return np.r_[gen, quarter, chains]


@cache
def reference_runs() -> list[dict]:
    sc = scenario(WORLD)
    D, GB = sc.market.days, len(sc.segments) * len(sc.band_names)
    out = []
    for i in range(R_REFERENCE):
        r = simulate_reference(sc, seed=20_000 + i)
        ref = r["referrals"]
        _, chain = np.unique(ref["root"], return_inverse=True)
        out.append({
            "stages": r["stages"],
            "flows": r["flows"],
            "offer_units": r["offer_units"].sum(axis=0),
            "referred": int(r["referred"].sum()),
            "programme_units": float(r["channel_units"].sum()),
            "summary": r["summary"],
            "pairs": np.bincount(ref["referrer_fb"] * GB + ref["referred_fb"], minlength=GB * GB),
            "cascades": _cascades(ref["day"], ref["generation"], chain.ravel(), D),
        })
    return out


def _codes(table, column) -> np.ndarray:
    """The indices of a dictionary column (segments and bands in scenario order)."""
    return table.column(column).combine_chunks().indices.to_numpy().astype(np.int64)


@cache
def kernel_runs(change: str | None = None) -> list[dict]:
    cm = compile_scenario(scenario(_world(POWER.get(change))))
    D, B, GB = cm.days, cm.n_bands, cm.n_segments * cm.n_bands
    out = []
    for rep in range(R_KERNEL):
        e = Engine(cm, replication=rep)
        with use_threads(1):  # one chunk of customers: one thread avoids waiting on a busy core
            while not e.done:
                e.step()
        h = e.history
        t = referrals_table(cm, e, rep)
        src = _codes(t, "referrer_segment") * B + _codes(t, "referrer_age_band")
        dst = _codes(t, "referred_segment") * B + _codes(t, "referred_age_band")
        out.append({
            "stages": h.stages,
            "flows": h.flows,
            "offer_units": h.offer_units.sum(axis=(0, 1)),
            "referred": int(h.referred.sum()),
            "programme_units": float(h.channel_units.sum()),
            "summary": kernel_summary(cm, h, rep, network=network_kpis(e)),
            "pairs": np.bincount(src * GB + dst, minlength=GB * GB),
            "cascades": _cascades(t.column("day").to_numpy().astype(np.int64),
                                  t.column("generation").to_numpy().astype(np.int64),
                                  t.column("chain").to_numpy(), D),
        })
    return out


def compare(change: str | None = None) -> dict:
    """The family of two-sample tests, kernel (changed or not) against the reference."""
    sc = scenario(WORLD)
    ker, ref = kernel_runs(change), reference_runs()
    D = sc.market.days
    out = {}
    for d in sorted({D // 4, D // 2, D}):
        out[f"stages day {d}"] = hotelling_two_sample([r["stages"][d].ravel() for r in ker],
                                                      [r["stages"][d].ravel() for r in ref])

    def kpis(run):
        return [*(run["summary"][k] for k in KPIS), *run["offer_units"], run["referred"], run["programme_units"]]

    out["kpis"] = hotelling_two_sample([kpis(r) for r in ker], [kpis(r) for r in ref])

    def moves(run):
        return run["flows"].sum(axis=(0, 1)).ravel()

    out["attribution"] = hotelling_two_sample([moves(r) for r in ker], [moves(r) for r in ref])
    out["who refers whom"] = hotelling_two_sample([r["pairs"] for r in ker], [r["pairs"] for r in ref])
    out["cascades"] = hotelling_two_sample([r["cascades"] for r in ker], [r["cascades"] for r in ref])
    assert len(out) == TESTS
    return out


def _report(tests):
    return "; ".join(f"{k}: p={t.p_value:.2e} (dim {t.dims})" for k, t in tests.items())


def test_reference_builds_the_graph_and_logs_referrals_as_written():
    """The reference's own bookkeeping, exactly: its graph has ``contacts`` out-edges per
    person keyed 0..contacts-1; every logged referral is an edge of the graph, reached an
    unaware or lapsed friend, is counted in the flows under cause referral on its day, and
    its generation is the referrer's latest generation plus one."""
    from cvj.reference import ReferenceModel

    sc = scenario(_world({"market.customers": 500, "market.days": 15}))
    m = ReferenceModel(sc, seed=3)
    deg = sc.referrals.network.contacts
    assert all(sorted(k for _, _, k in m.graph.out_edges(i, keys=True)) == list(range(deg)) for i in range(m.N))
    while m.day < m.D:
        m.step()
    r = m.results()
    ref = r["referrals"]
    assert ref["day"].size > 50
    for src, dst in zip(ref["referrer"].tolist(), ref["referred"].tolist()):
        assert m.graph.has_edge(src, dst) and src != dst
    assert set(ref["from_stage"].tolist()) <= {STAGE_ID["unaware"], STAGE_ID["lapsed"]}
    by_day = r["flows"][:, :, :, 1].sum(axis=(1, 2))  # cause 1 is referral
    np.testing.assert_array_equal(by_day, np.bincount(ref["day"], minlength=m.D + 1))
    last_gen = {}
    for src, dst, g in zip(ref["referrer"].tolist(), ref["referred"].tolist(), ref["generation"].tolist()):
        assert g == last_gen.get(src, 0) + 1
        last_gen[dst] = g


def _order_world(initial: dict, advance: dict) -> dict:
    """Promoters tell a contact every day (chance 1); organic moves that are certain."""
    return {
        "format": 2,
        "market": {"customers": 400, "days": 3, "seed": 48, "initial_stages": initial},
        "organic": {"advance": advance},
        "referrals": {"model": "network", "rates": {"promoter": 1.0}, "network": {"contacts": 4}},
        "offers": {"entry": {"price": 10.0}, "core": {"price": 50.0}},
    }


def _kernel_tables(sc):
    e = Engine(compile_scenario(sc))
    while not e.done:
        e.step()
    return e.history.stages, e.history.flows


def _reference_tables(sc):
    r = simulate_reference(sc, seed=5)
    return r["stages"], r["flows"]


@pytest.mark.parametrize("run", [_kernel_tables, _reference_tables], ids=["kernel", "reference"])
def test_the_order_of_a_day_is_the_written_one(run):
    """docs/model.md, "Referrals": tellings from the state at the start of the day, the
    day's own moves, then the referrals; checked exactly with certain moves (a daily
    chance of 1 is 1 - 1e-12) in both the kernel and the reference.

    - a friend referred on day 1 is ``aware`` at its end (not moved on by its own certain
      ``aware -> engaged`` that day) and moves on on day 2, all of them;
    - a friend who moves on its own that day (certain ``unaware -> aware``) is no referral;
    - a person who becomes a promoter during day 1 tells nobody that day.
    """
    U, A, E, P, L = (STAGE_ID[s] for s in ("unaware", "aware", "engaged", "promoter", "lapsed"))
    REF = CAUSE_REFERRAL  # the flows' cause column (organic 0, referral 1, channels...)
    stages, flows = run(scenario(_order_world({"unaware": 0.4, "lapsed": 0.2, "promoter": 0.4}, {"aware": 1.0})))
    told = flows[1, :, :, REF].sum(axis=0)
    assert told[U] > 20 and told[L] > 5 and told.sum() == told[U] + told[L]
    assert stages[1, :, A].sum() == told.sum() and stages[1, :, E].sum() == 0
    assert flows[2, :, A, :].sum() == flows[2, :, A, 0].sum() == told.sum()  # all move on, organically
    stages, flows = run(scenario(_order_world({"unaware": 0.6, "promoter": 0.4}, {"unaware": 1.0})))
    assert flows[1, :, :, REF].sum() == 0 and stages[1, :, U].sum() == 0
    stages, flows = run(scenario(_order_world({"unaware": 0.6, "advocate": 0.4}, {"advocate": 1.0})))
    assert flows[1, :, :, REF].sum() == 0 and stages[1, :, P].sum() == stages[0, :, STAGE_ID["advocate"]].sum()
    assert flows[2, :, U, REF].sum() > 20


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="needs full-size replications (JIT off: skipped)")
def test_kernel_agrees_with_the_reference_on_a_network():
    tests = compare()
    print(f"network: {_report(tests)}")
    failed = {k: t for k, t in tests.items() if t.p_value < ALPHA}
    assert not failed, f"rejected at {ALPHA:.1e}: " + _report(failed)


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs full-size replications (JIT off: skipped)")
@pytest.mark.parametrize("change", list(POWER))
def test_the_comparison_rejects_a_slight_change(change):
    tests = compare(change)
    print(f"power check {change}: {_report(tests)}")
    assert min(t.p_value for t in tests.values()) < ALPHA, _report(tests)
