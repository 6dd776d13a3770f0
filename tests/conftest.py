"""What several test modules share: the repository's paths and the study files that
the study tests (loading, output, Dask, statistics) run."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the scenario every test study varies: the handbag shop in format 1, whose economics
#: at small sizes the study tests were written for (the format-2 default is a slower
#: funnel: few people buy within a short horizon at a small market)
DEFAULT_SCENARIO = ROOT / "scenarios" / "handbag_shop_format1.toml"


def two_variant_study(name: str, *, replications: int, days: int, customers: int, kpis: list[str], channels=None) -> str:
    """A study of the default scenario: ``mid`` (the scenario as it is, the baseline)
    against ``free`` (a free entry offer, and a marketer who shifts budget every 5
    days, between ``channels`` if given)."""
    managed = f', channels = {list(channels)!r}' if channels else ""
    return f"""
format = 1
name = "{name}"
scenario = "{DEFAULT_SCENARIO}"
replications = {replications}
days = {days}
customers = {customers}
baseline = "mid"
kpis = {list(kpis)!r}

[variants.mid]

[variants.free]
overrides = {{ "offers.entry.price" = 0.0 }}
marketer = {{ policy = "shift", review_days = 5{managed} }}
""".replace("'", '"')


@pytest.fixture(scope="module")
def study_file(request, tmp_path_factory) -> Path:
    """The test module's ``STUDY`` text as a file, written once per module (so a
    module-scoped fixture can run the study once and its tests reuse the runs)."""
    module = request.module.__name__.rpartition(".")[2]
    p = tmp_path_factory.mktemp("study") / f"{module}.toml"
    p.write_text(request.module.STUDY)
    return p
