"""Warnings: every kind has a tiny scenario in tests/warnings/ that triggers it
(``NAME.toml``) and one that does not (``NAME.ok.toml``, the smallest change that
removes the trap); warnings never change a run; the command line prints them on
stderr, escaped, stores them in _cvj.json and silences them by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cvj
from cvj.checks import ALL, CHECKS, check_names, check_scenario, shown
from cvj.errors import ArgumentError
from cvj.scenario import override
from tests.test_cli import assert_user_error
from tests.test_cli import cvj as cvj_cli

HERE = Path(__file__).parent / "warnings"


def names_of(warnings) -> set[str]:
    return {w.name for w in warnings}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_warning_has_a_scenario_that_triggers_it_and_one_that_does_not(name):
    triggers, fine = HERE / f"{name}.toml", HERE / f"{name}.ok.toml"
    assert triggers.is_file() and fine.is_file(), f"tests/warnings/ needs {triggers.name} and {fine.name}"
    hit = cvj.run(triggers, threads=1).warnings
    assert name in names_of(hit), hit
    assert name not in names_of(cvj.run(fine, threads=1).warnings)
    assert all(w.path and w.message for w in hit)


def test_the_bundled_scenarios_raise_no_warning():
    for path in (cvj.default_scenario_path(), HERE.parent.parent / "scenarios" / "starter.toml"):
        assert check_scenario(cvj.load_scenario(path)) == [], path


BASE = HERE / "suspicious-unit.ok.toml"


@pytest.mark.parametrize(
    "overrides,path",
    [
        ({"channels.ads.unit_cost": 0.05}, "channels.ads.unit_cost"),  # a CPM below 0.1
        ({"channels.email.unit_cost": 2.0}, "channels.email.unit_cost"),  # per 1,000 sends
        ({"channels.ads.ctr": 0.5}, "channels.ads.ctr"),  # 50 % of impressions clicked
        ({"channels.email.open_rate": 0.1, "channels.email.click_rate": 0.2}, "channels.email.click_rate"),
        ({"organic.lapse.aware": 0.3}, "organic.lapse.aware"),  # a monthly churn typed as daily
        ({"referrals.rates": {"subscribed": 2.0}}, "referrals.rates.subscribed"),
    ],
)
def test_each_suspicious_unit_is_found_and_its_plausible_value_is_not(overrides, path):
    base = cvj.load_scenario(BASE)
    assert "suspicious-unit" not in names_of(check_scenario(base))
    found = [w for w in check_scenario(override(base, overrides)) if w.name == "suspicious-unit"]
    assert [w.path for w in found] == [path]


def test_a_daily_budget_equal_to_a_monthly_cost_is_suspicious():
    base = cvj.load_scenario(BASE)
    retainer = {"pricing": "fixed", "monthly_cost": 5.0, "contacts_per_day": 1.0}
    sc = override(base, {"channels": {**base.model_dump(mode="json")["channels"], "seo": retainer}})
    found = [w for w in check_scenario(sc) if w.name == "suspicious-unit"]
    assert [w.path for w in found] == ["channels.ads.daily_budget"]  # ads spends 5.0 a day
    assert "equals channels.seo.monthly_cost" in found[0].message
    sc = override(sc, {"channels.seo.monthly_cost": 150.0})
    assert "suspicious-unit" not in names_of(check_scenario(sc))


def test_warnings_never_change_the_tables():
    path = HERE / "budget-not-binding.toml"
    loud = cvj.run(path, replications=2, threads=1)
    quiet = cvj.run(path, replications=2, threads=1, quiet_warnings=[ALL])
    assert loud.warnings == quiet.warnings and loud.warnings
    assert quiet.shown_warnings == [] and loud.shown_warnings == loud.warnings
    for name, table in loud.tables.items():
        assert table.equals(quiet.tables[name]), name


def test_names_to_silence_are_checked():
    assert check_names(["budget-not-binding", "all", "budget-not-binding"]) == ("budget-not-binding", "all")
    with pytest.raises(ArgumentError, match="no such warning"):
        check_names(["budget-not-bindng"])
    ws = check_scenario(cvj.load_scenario(HERE / "suspicious-unit.toml"))
    assert shown(ws, ["suspicious-unit"]) == [w for w in ws if w.name != "suspicious-unit"]


def test_the_commands_print_store_and_silence_warnings(tmp_path):
    f = HERE / "audience-capped-by-market.toml"
    p = cvj_cli("validate", f)
    assert p.returncode == 0 and p.stdout.startswith("ok: ")
    assert p.stderr.startswith("warning [audience-capped-by-market] channels.ads.audience.size: an audience of 5,000")
    p = cvj_cli("validate", f, "--quiet-warning", "audience-capped-by-market")
    assert p.returncode == 0 and p.stderr == ""
    p = cvj_cli("run", f, "--out", tmp_path / "r", "-q", "--threads", 1)
    assert p.returncode == 0 and "warning [audience-capped-by-market]" in p.stderr
    info = json.loads((tmp_path / "r" / "_cvj.json").read_text())
    assert [(w["name"], w["silenced"]) for w in info["warnings"]] == [("audience-capped-by-market", False)]
    p = cvj_cli("run", f, "--out", tmp_path / "q", "-q", "--quiet-warning", "all", "--threads", 1)
    assert p.returncode == 0 and "warning" not in p.stderr
    info = json.loads((tmp_path / "q" / "_cvj.json").read_text())
    assert [(w["name"], w["silenced"]) for w in info["warnings"]] == [("audience-capped-by-market", True)]
    assert info["quiet_warnings"] == ["all"]
    assert_user_error(cvj_cli("validate", f, "--quiet-warning", "nope"), "quiet-warning")


def test_warning_text_is_printed_escaped(tmp_path):
    # a channel name holds only letters, digits and _ - . (cvj.names), but a path typed
    # on the command line is shown in messages: nothing reaches the terminal raw
    f = tmp_path / "a\x1b[31mb.toml"
    f.write_text((HERE / "audience-capped-by-market.toml").read_text())
    p = cvj_cli("validate", f)
    assert p.returncode == 0 and "\x1b" not in p.stdout + p.stderr and "\\x1b[31m" in p.stdout


def test_compare_prints_the_variants_warnings_once_each(tmp_path):
    """A warning every variant has is printed once as it is; one that only some have
    names them (in their own script); --quiet-warning silences them; the library call
    cvj.study.check_study gives the same list."""
    from cvj.study import check_study, load_study
    from tests.conftest import ROOT

    study = tmp_path / "s.toml"
    study.write_text(f"""
format = 1
name = "w"
scenario = "{ROOT / 'scenarios' / 'default.toml'}"
replications = 2
days = 20
sample = 2000
baseline = "base"
kpis = ["profit"]

[variants.base]
overrides = {{ "channels.retargeting.unit_cost" = 0.014 }}

[variants."عرض_مجاني"]
overrides = {{ "channels.retargeting.unit_cost" = 0.014, "channels.paid_social.unit_cost" = 0.01 }}
""", encoding="utf-8")
    got = [(w.name, w.path) for w in check_study(load_study(study))]
    # a CPM of 0.01 buys more impressions than paid social's audience can take, so that
    # variant's budget cannot bind either
    assert got == [("suspicious-unit", "channels.retargeting.unit_cost"),
                   ("suspicious-unit", "variant عرض_مجاني: channels.paid_social.unit_cost"),
                   ("budget-not-binding", "variant عرض_مجاني: channels.paid_social.daily_budget")]
    p = cvj_cli("compare", study, "-q", "--workers", 1, "--threads", 1)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("warning")]
    assert lines[:2] == [
        "warning [suspicious-unit] channels.retargeting.unit_cost: a CPM (the cost of 1,000 impressions) of 0.014 is "
        "below 0.1: if 0.014 is the cost of one impression, the CPM is 14",
        "warning [suspicious-unit] variant عرض_مجاني: channels.paid_social.unit_cost: a CPM (the cost of 1,000 "
        "impressions) of 0.01 is below 0.1: if 0.01 is the cost of one impression, the CPM is 10",
    ], p.stderr
    assert lines[2].startswith("warning [budget-not-binding] variant عرض_مجاني: channels.paid_social.daily_budget: ")
    assert len(lines) == 3
    p = cvj_cli("compare", study, "-q", "--workers", 1, "--threads", 1, "--quiet-warning", "suspicious-unit")
    assert p.returncode == 0 and [ln for ln in p.stderr.splitlines() if ln.startswith("warning")] == lines[2:], p.stderr
