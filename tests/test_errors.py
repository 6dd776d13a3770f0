"""One error family: every error cvj raises on purpose is a CvjError with path and value,
and the CLI maps the family to exit statuses in one place."""

import pytest

import cvj
from cvj.cli import exit_code
from cvj.engine import check_memory, use_threads
from cvj.errors import ArgumentError, ClusterError, CvjError, OutputError, ResourceError, ScenarioError

MEMBERS = (ScenarioError, ArgumentError, ResourceError, OutputError, ClusterError)


@pytest.mark.parametrize("cls", MEMBERS)
def test_every_member_carries_path_value_and_source(cls):
    exc = cls("must be positive", "channels.ads.daily_budget", -5.0, "x.toml")
    assert isinstance(exc, CvjError)
    assert (exc.path, exc.value, exc.source, exc.reason) == ("channels.ads.daily_budget", -5.0, "x.toml", "must be positive")
    assert str(exc) == "x.toml: channels.ads.daily_budget = -5.0: must be positive"


def test_a_value_is_shown_escaped_and_short():
    exc = CvjError("bad", "segments", "a\x1b[31m\nb" + "x" * 200)
    text = str(exc)
    assert "\x1b" not in text and "\n" not in text and text.endswith("...: bad")


def test_the_public_names_are_the_family():
    assert cvj.ScenarioError is ScenarioError and cvj.OutputError is OutputError and cvj.CvjError is CvjError
    from cvj.output import OutputError as from_output
    from cvj.scenario import ScenarioError as from_scenario
    from cvj.study.dask import ClusterError as from_distributed

    assert (from_scenario, from_output, from_distributed) == (ScenarioError, OutputError, ClusterError)


def test_exit_codes_user_errors_2_cluster_failures_1():
    assert [exit_code(cls("x")) for cls in MEMBERS] == [2, 2, 2, 2, 1]


def test_memory_and_threads_are_resource_errors_not_document_errors():
    with pytest.raises(ResourceError) as info:
        check_memory(10**9, budget=2**30)
    assert not isinstance(info.value, ScenarioError)
    with pytest.raises(ResourceError, match="threads = 0"), use_threads(0):
        pass
