"""The registries are what the code computes: KPI names and types, table names and
schemas, and the stage, cause and offer ids the kernels mirror."""

import pyarrow as pa

import cvj
from cvj import registry, stages
from cvj.kernels import journey
from cvj.mesa_model import run_model
from cvj.model import compile_scenario
from cvj.scenario import RESPONSIVENESS_LEVELS
from cvj.study.stats import contrasts

SMALL = {"market.customers": 2000, "market.days": 12}
#: the default shop with its handbag sold as a monthly subscription
SUBSCRIPTION = {
    "offers.core.subscription": {"trial_days": 7, "churn": 0.05},
    "offers.core.repeat_rate": 0.0,
    "offers.core.order_multipliers": {},
    "organic.lapse": {"aware": 0.01},
}


def test_a_run_reports_exactly_the_registered_kpis_and_tables():
    sc = cvj.load_scenario(None, SMALL)
    res = cvj.run(sc, customers_table=True)
    only_with = {  # tables of a model the default does not use
        "referrals": {"referrals.model": "network"},
        "subscriptions": SUBSCRIPTION,
    }
    assert tuple(res.tables) == tuple(t for t in registry.names(registry.RUN_TABLES) if t not in only_with)
    for name, settings in only_with.items():
        assert name in cvj.run(cvj.load_scenario(None, {**SMALL, **settings})).tables
    sub = cvj.run(cvj.load_scenario(None, {**SMALL, **SUBSCRIPTION})).tables["summary"]
    assert sub.schema.equals(registry.summary_schema(sc.segments, subscription=True))
    summary = res.tables["summary"]
    assert summary.schema.equals(registry.summary_schema(sc.segments))
    assert tuple(summary.column_names[len(registry.SUMMARY_KEYS) :]) == registry.kpi_names(sc.segments)


def test_a_study_run_gives_the_registered_tables_and_schemas():
    sc = cvj.load_scenario(None, SMALL)
    tables = run_model(compile_scenario(sc), 0)
    assert sorted(tables) == sorted(registry.names(registry.STUDY_RUN_TABLES))
    assert tables["budget_moves"].schema.equals(registry.MOVE_SCHEMA)


def test_contrasts_have_the_registered_schema():
    class Study:
        baseline, variant_names, kpis, confidence = "a", ("a", "b"), ("profit", "cac"), 0.95

    runs = {v: [{"profit": 1.0 + i, "cac": 2.0 * i} for i in range(3)] for v in ("a", "b")}
    assert contrasts(Study, runs).schema.equals(registry.CONTRASTS_SCHEMA)


def test_every_kpi_is_found_by_name_with_its_direction():
    segments = ("B2C", "a b")
    for k in registry.kpis(segments):
        assert registry.kpi(k.name) == k
    lower = {k.name for k in registry.kpis(segments) if k.lower_is_better}
    assert lower == {"spend", "cost", "cac", "payback_day", "end_unaware", "end_lapsed"}
    assert all(k.type in (pa.float64(), pa.int64(), pa.int32()) for k in registry.kpis(segments))


def test_the_kernels_mirror_the_stage_cause_and_offer_ids():
    j = journey
    assert (j._UNAWARE, j._AWARE, j._ENGAGED, j._SUBSCRIBED, j._CONVERTED, j._EXCITED, j._PROMOTER, j._LAPSED) == (
        stages.UNAWARE,
        stages.AWARE,
        stages.ENGAGED,
        stages.SUBSCRIBED,
        stages.CONVERTED,
        stages.EXCITED,
        stages.PROMOTER,
        stages.LAPSED,
    )
    assert j._REFERRAL == stages.CAUSE_REFERRAL and stages.CAUSE_ORGANIC == 0
    assert (j._LEAD_MAGNET, j._ENTRY, j._CORE) == (stages.OFFER_LEAD_MAGNET, stages.OFFER_ENTRY, stages.OFFER_CORE)
    assert j.N_LEVELS == RESPONSIVENESS_LEVELS
