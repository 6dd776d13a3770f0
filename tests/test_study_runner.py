"""cvj.study.compare is the one library call behind cvj compare: it refuses exclusive
choices before anything starts, and checks memory once for the runs sharing this
machine."""

import pytest

import cvj.study.runner
from cvj.errors import ArgumentError, ResourceError
from cvj.study import compare, load_study

STUDY = """
format = 1
scenario = "{scenario}"
replications = 2
days = 5
customers = 3000
baseline = "a"
kpis = ["profit"]
[variants.a]
[variants.b]
"""


@pytest.fixture
def study(tmp_path):
    from tests.conftest import DEFAULT_SCENARIO

    p = tmp_path / "s.toml"
    p.write_text(STUDY.format(scenario=DEFAULT_SCENARIO))
    return load_study(p)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, "workers and scheduler exclude each other"),
        ({"dask_workers": 2, "executor": object()}, "dask_workers and executor exclude each other"),
        ({"retries": 3}, "retries = 3: applies to Dask runs"),
        ({"resume": True}, "resume = true: needs out"),
        ({"target_halfwidth": {"cac": 1.0}}, 'target_halfwidth = "cac": not one of the study\'s kpis'),
    ],
)
def test_exclusive_or_invalid_choices_are_refused_before_anything_starts(study, tmp_path, options, message):
    with pytest.raises(ArgumentError, match=message):
        compare(study, out=tmp_path / "o" if "resume" not in options else None, **options)
    assert not (tmp_path / "o").exists()


def test_memory_is_checked_once_for_the_runs_sharing_this_machine(study, monkeypatch):
    calls = []
    monkeypatch.setattr(cvj.study.runner, "check_memory", lambda n, customers_table=False: calls.append((n, customers_table)))
    compare(study, workers=1)
    assert calls == [(3000, False)]  # one process holds one population at a time (no customers table)

    def refuse(n, customers_table=False):
        raise ResourceError("too big", "market.customers", n)

    monkeypatch.setattr(cvj.study.runner, "check_memory", refuse)
    ran = []
    monkeypatch.setattr(cvj.study.runner, "run_task", lambda *a: ran.append(a))
    with pytest.raises(ResourceError):
        compare(study, dask_workers=3)  # a local cluster: checked for 3 populations, before it starts
    assert ran == []
