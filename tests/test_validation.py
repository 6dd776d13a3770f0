"""One tiny invalid scenario per failure mode; each must name the key path and value."""

from pathlib import Path

import pydantic
import pytest

import cvj
from cvj.engine import check_memory
from cvj.errors import CvjError, ResourceError, ScenarioError
from cvj.scenario import load_scenario

INVALID = sorted((Path(__file__).parent / "invalid").glob("*.toml"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first[len("# expect: ") :]


def load_and_check(path):
    sc = load_scenario(path)
    check_memory(sc.market.customers)  # what `cvj validate` and `cvj run` do before allocating
    return sc


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_scenario_is_refused_with_path_and_value(path):
    with pytest.raises(CvjError) as info:
        load_and_check(path)
    message = str(info.value)
    # a population too large is the machine's limit, not a malformed document
    assert isinstance(info.value, ResourceError if "needs about" in message else ScenarioError)
    assert expected(path) in message, message
    assert message.startswith(str(path)) or "needs about" in message
    assert "\n" not in message


def test_there_is_one_file_per_failure_mode():
    assert len(INVALID) >= 20


def test_missing_file():
    with pytest.raises(ScenarioError, match=r"no such file: /nonexistent/x\.toml"):
        load_scenario("/nonexistent/x.toml")


def test_default_scenario_is_valid_and_frozen():
    sc = cvj.load_scenario()
    assert sc.format == 2 and sc.market.customers == 1_000_000
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        sc.name = "other"


def test_overrides_are_validated_too():
    with pytest.raises(ScenarioError, match=r"market.customers = -3: Input should be greater than 0"):
        load_scenario(None, {"market.customers": -3})
    sc = load_scenario(None, {"market.customers": 1000, "market.seed": 9})
    assert (sc.market.customers, sc.market.seed) == (1000, 9)


def test_canonical_json_round_trip():
    sc = cvj.load_scenario()
    again = cvj.scenario.scenario_from_json(sc.canonical_json())
    assert again == sc and again.sha256() == sc.sha256()


def test_memory_estimate_refuses_up_front():
    with pytest.raises(ResourceError, match=r"market\.customers"):
        check_memory(10**9, budget=2**30)
    check_memory(10**6, budget=2**30)


def test_scenario_rebuilt_from_its_metadata_reproduces_the_run():
    sc = load_scenario(None, {"market.customers": 3000, "market.days": 20})
    again = cvj.scenario.scenario_from_json(sc.canonical_json())
    assert list(again.segments) == list(sc.segments) and list(again.channels) == list(sc.channels)
    a, b = cvj.run(sc), cvj.run(again)
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name
