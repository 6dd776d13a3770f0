"""Names and other user text: the one name rule (cvj.names), printing it escaped and
literally, and a property test that throws hostile names at `cvj validate` and `cvj run`."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cvj.cli import main
from cvj.names import LABEL_MAX_CHARS, NAME_MAX_CHARS, check_label, escape, name_problem
from cvj.scenario import RESERVED_CAUSES
from tests.conftest import DEFAULT_SCENARIO

TINY = ["--customers", "200", "--days", "3", "--threads", "1", "-q"]

HOSTILE = [
    "",
    ".",
    "..",
    "[/]",
    "[link=file:///etc/passwd]x[/link]",
    "[bold red]x",
    ":smile:",
    "\x1b[31m",
    "\x1b]8;;file:///etc/passwd\x07",
    "a\nb",
    "free\n",
    "\r",
    "\x00",
    "\x85",
    "\u2028",
    "\u202eevil",
    "a\u200db",
    "\ufeff",
    "../../x",
    "a/b",
    "a\\b",
    " a",
    "a ",
    "a  b",
    "\t",
]
VALID = ["B2C", "عملاء_الجملة", "顧客", "paid social", "v1.2-beta", "café", "Ελλάδα", "दुकान"]


def toml_str(s: str) -> str:
    """``s`` as a TOML basic string (control characters as \\uXXXX, as TOML requires)."""
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def scenario_text(name: str, currency: str, seg1: str, seg2: str, channel: str, upsell: str) -> str:
    s1, s2, ch, up = map(toml_str, (seg1, seg2, channel, upsell))
    return f"""format = 1
name = {toml_str(name)}
currency = {toml_str(currency)}
[offers.entry]
price = 7.0
[offers.core]
price = 100.0
[offers.upsells.{up}]
price = 20.0
take_rate = 0.1
[segments.{s1}]
share = 0.5
[segments.{s2}]
share = 0.5
[channels.{ch}]
pricing = "cpm"
unit_cost = 5.0
daily_budget = 10.0
affinity = {{ {s1} = 0.5 }}
pushes = {{ "aware->engaged" = 0.05 }}
"""


def clean_output(res) -> None:
    """No traceback, no raw control or format character, a refusal is one line."""
    text = res.stdout + res.stderr
    assert "Traceback" not in text, text
    bad = [c for c in text if c != "\n" and not c.isprintable()]
    assert not bad, (bad, text)
    assert res.exit_code in (0, 2), (res.exit_code, text, res.exception)
    if res.exit_code == 2:
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("name", [*VALID, "a" * NAME_MAX_CHARS, "x.y_z-1", "٣٤", "e\u0301"])
def test_valid_names(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", [*HOSTILE, "a" * (NAME_MAX_CHARS + 1), "𠀀" * 49, "½", "a$", "😀", "a\u00a0b"])
def test_invalid_names(name):
    assert name_problem(name) is not None


def test_escape_keeps_printable_text_and_escapes_the_rest():
    assert escape("عملاء_الجملة [/] 顧客 a\\b") == "عملاء_الجملة [/] 顧客 a\\b"
    assert escape("a\x1b[31m\nb\u202ec\x00\udcff") == "a\\x1b[31m\\nb\\u202ec\\x00\\udcff"
    for s in HOSTILE:
        assert escape(s).isprintable()


def test_labels_allow_free_text_but_no_control_characters():
    assert check_label("[/] shop — عملاء") == "[/] shop — عملاء"
    for bad in ("a\n", "\x1b[31m", "\u202e", "x" * (LABEL_MAX_CHARS + 1)):
        with pytest.raises(ValueError):
            check_label(bad)


# --------------------------------------------------------------------------- printing


def test_user_text_prints_literally_and_the_run_ends_well(tmp_path):
    name = "[/] [link=file:///etc/passwd]x[/link] :smile:"
    sc = tmp_path / "s.toml"
    sc.write_text(scenario_text(name, "[/]", "عملاء_الجملة", "顧客", "ads", "up"))
    out = tmp_path / "o[/x]"
    res = CliRunner().invoke(main, ["run", str(sc), *TINY, "--out", str(out)])
    assert res.exit_code == 0, res.output
    clean_output(res)
    assert f"KPIs: {name} (seed 2026)" in res.stdout
    assert re.search(r"│ spend +│ +[0-9,]+ \[/\] │", res.stdout), res.stdout
    assert "ltv_عملاء_الجملة" in res.stdout and "ltv_顧客" in res.stdout
    assert f"tables in {out}" in res.stderr
    res = CliRunner().invoke(main, ["validate", str(sc)])
    assert res.exit_code == 0 and "2 segments (عملاء_الجملة, 顧客)" in res.stdout, res.output


def test_control_characters_in_an_out_path_are_shown_escaped(tmp_path):
    out = tmp_path / "o\x1b[31m\nx"
    res = CliRunner().invoke(main, ["run", *TINY, "--out", str(out)])
    assert res.exit_code == 0, res.output
    clean_output(res)
    assert f"tables in {tmp_path}/o\\x1b[31m\\nx" in res.stderr
    assert (out / "_cvj.json").exists()  # a strange name, but the user's choice


def test_a_study_named_with_markup_prints_literally(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(
        f"""format = 1
name = "[/] [link=file:///etc/passwd]x[/link]"
scenario = "{DEFAULT_SCENARIO}"
replications = 2
days = 3
customers = 200
baseline = "عملاء"
kpis = ["profit"]
[variants."عملاء"]
[variants."[x]".overrides]
"offers.entry.price" = 0.0
"""
    )
    res = CliRunner().invoke(main, ["compare", str(study), "--workers", "1", "-q"])
    assert res.exit_code == 2 and "variants.[x]" in res.stderr  # '[' is not in a name
    clean_output(res)
    study.write_text(study.read_text().replace('"[x]"', '"مجاني"'))
    res = CliRunner().invoke(main, ["compare", str(study), "--workers", "1", "-q", "--out", str(tmp_path / "o[/]")])
    assert res.exit_code == 0, res.output
    clean_output(res)
    assert "study '[/] [link=file:///etc/passwd]x[/link]'" in res.stdout and "مجاني" in res.stdout
    assert json.loads((tmp_path / "o[/]" / "_cvj.json").read_text())["variants"] == ["عملاء", "مجاني"]


def test_click_errors_are_one_escaped_line():
    res = CliRunner().invoke(main, ["run", "--threads", "\x1b[31m\n"])
    clean_output(res)
    assert res.exit_code == 2 and "'\\x1b[31m\\n' is not a valid integer" in res.stderr


# --------------------------------------------------------------------------- property


fragments = st.sampled_from(HOSTILE + VALID)
free_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
hostile = st.one_of(
    fragments,
    free_text,
    st.lists(st.one_of(fragments, free_text), min_size=1, max_size=4).map("".join),
    st.text(st.sampled_from("sع顧 "), min_size=55, max_size=300),
)
# letters, marks and digits of every script (valid unless too long), so that clean
# runs are drawn as often as refusals
well_formed = st.one_of(
    st.sampled_from(VALID),
    st.text(st.characters(categories=("L", "M", "Nd")), min_size=1, max_size=20),
)
names = st.integers(0, 5).flatmap(lambda k: hostile if k == 0 else well_formed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, currency=names, seg1=names, seg2=names, channel=names, upsell=names)
def test_hostile_names_give_a_clean_error_or_a_clean_run(tmp_path_factory, name, currency, seg1, seg2, channel, upsell):
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    sc = work / "s.toml"
    sc.write_text(scenario_text(name, currency, seg1, seg2, channel, upsell), encoding="utf-8")
    out = work / "out"

    def label_ok(s):
        try:
            check_label(s)
            return True
        except ValueError:
            return False

    valid = (
        all(name_problem(n) is None for n in (seg1, seg2, channel, upsell))
        and seg1 != seg2
        and channel not in RESERVED_CAUSES
        and label_ok(name)
        and label_ok(currency)
    )
    runner = CliRunner()
    event("valid" if valid else "refused")
    for args in (["validate", str(sc)], ["run", str(sc), *TINY, "--out", str(out)]):
        res = runner.invoke(main, args)
        clean_output(res)
        assert res.exit_code == (0 if valid else 2), (args[0], res.output)
    assert sorted(os.listdir(work)) == (["out", "s.toml"] if valid else ["s.toml"])
    if valid:
        assert (out / "_cvj.json").exists()
