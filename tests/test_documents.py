"""The document layer: one strict base, one reader, one translator for every kind."""

import pydantic
import pytest

from cvj import documents, mesa_model, scenario
from cvj.errors import ScenarioError
from cvj.study import spec as study_spec


def _models(module):
    classes = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
    return [v for v in classes if issubclass(v, pydantic.BaseModel)]


@pytest.mark.parametrize("module", [scenario, study_spec, mesa_model], ids=lambda m: m.__name__)
def test_every_document_model_is_strict(module):
    models = _models(module)
    assert models
    for m in models:
        assert issubclass(m, documents.Strict), m
        assert m.model_config["extra"] == "forbid" and m.model_config["strict"] and m.model_config["frozen"]


def test_key_path_keeps_only_keys_of_the_document():
    raw = {"channels": {"ads": {"pricing": "cpm", "daily_budget": -1}}, "segments": {"x": {}}}
    # pydantic's location holds the union tag 'cpm' and '[key]': neither is in the document
    assert documents.key_path(raw, ("channels", "ads", "cpm", "daily_budget")) == "channels.ads.daily_budget"
    assert documents.key_path(raw, ("segments", "x", "[key]")) == "segments.x"
    assert documents.key_path(raw, ("channels", "ads", "cpm", "unit_cost"), keep_last=True) == "channels.ads.unit_cost"


def test_one_translator_for_every_kind():
    expect = r"^f.toml: channels.ads.pricing = \"cpx\": unknown pricing model; expected one of cpm, cpc"
    with pytest.raises(ScenarioError, match=expect):
        scenario.validate_scenario(
            {"format": 1, "channels": {"ads": {"pricing": "cpx"}}, "offers": {"entry": {"price": 1.0}, "core": {"price": 1.0}}},
            source="f.toml",
        )
    with pytest.raises(ScenarioError, match=r"^review_dayz = 3: unknown key \(not part of the marketer table"):
        documents.validate(mesa_model.MarketerSettings, {"review_dayz": 3}, kind="marketer")
    with pytest.raises(ScenarioError, match=r"^s.toml: format = 2: unsupported study format; this program reads format = 1"):
        documents.validate(study_spec.StudySpec, {"format": 2}, kind="study", source="s.toml", format=1)
    with pytest.raises(ScenarioError, match=r"^policy = \"x\": Input should be .fixed. or .shift. \(and 1 more problem\)"):
        documents.validate(mesa_model.MarketerSettings, {"review_days": "7", "policy": "x"}, kind="marketer")


def test_reader_errors_are_scenario_errors(tmp_path):
    with pytest.raises(ScenarioError, match="is a directory"):
        documents.read_toml(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ScenarioError, match="cannot read"):
        documents.read_toml(bad)
