"""The command line's shared options and help: ``--set KEY=VALUE`` (the rules of a
study's overrides, values as TOML, never evaluated), ``cvj run --replications N`` as
mean and CI, two real examples in every command's help, and ``cvj init``."""

from __future__ import annotations

import json
import shlex

import pyarrow.parquet as pq
import pytest

import cvj
from cvj.cli import main
from tests.test_cli import assert_user_error
from tests.test_cli import cvj as cvj_cli

STARTER_DAYS = ("--days", 40)


def test_set_overrides_any_field_by_dotted_path(tmp_path):
    p = cvj_cli(
        "run", "--set", "market.customers=3000", "--set", "market.days=12", "--set", "channels.email.daily_budget=80",
        "--set", 'offers.entry.name="Kit [/] [bold]"', "--out", tmp_path / "r", "-q", "--threads", 1,
    )
    assert p.returncode == 0, p.stderr
    meta = pq.read_schema(next((tmp_path / "r" / "summary").glob("*.parquet"))).metadata
    sc = json.loads(meta[b"cvj.scenario"])
    assert (sc["market"]["customers"], sc["market"]["days"]) == (3000, 12)
    assert sc["channels"]["email"]["daily_budget"] == 80 and sc["offers"]["entry"]["name"] == "Kit [/] [bold]"


@pytest.mark.parametrize(
    "option,fragment",
    [
        ("channels.emial.daily_budget=80", "--set: channels.emial.daily_budget = 80: no such field in the scenario"),
        ("market.days=-3", "--set: market.days = -3: Input should be greater than 0"),
        ("market.days=twelve", "'twelve' is not a TOML value"),
        ("market.days", "expected KEY=VALUE"),
        ("offers.entry.price=__import__('os')", "is not a TOML value"),
        ("market.seed=\"7\"", "market.seed = \"7\": Input should be a valid integer"),
        ('offers.entry.name="\\u001b"', "cannot hold U+001B"),
    ],
)
def test_a_bad_set_is_one_line_naming_the_key(option, fragment, tmp_path):
    p = cvj_cli("run", "--set", option, "--out", tmp_path / "r", "-q")
    assert_user_error(p, fragment)
    assert not (tmp_path / "r").exists()


def test_validate_takes_set_too():
    p = cvj_cli("validate", cvj.default_scenario_path(), "--set", "market.customers=5000", "--quiet-warning", "all")
    assert p.returncode == 0 and "5,000 customers" in p.stdout and p.stderr == ""


def test_run_with_replications_prints_mean_and_ci_not_a_column_each():
    p = cvj_cli("run", "--customers", 3000, "--days", 15, "--replications", 3, "-q", "--threads", 1,
                "--quiet-warning", "all")
    assert p.returncode == 0, p.stderr
    assert "3 replications: mean and 95% CI" in p.stdout
    assert "mean" in p.stdout and "95% CI" in p.stdout and "rep 1" not in p.stdout
    one = cvj_cli("run", "--customers", 3000, "--days", 15, "-q", "--threads", 1, "--quiet-warning", "all")
    assert "rep 0" in one.stdout and "Channels: customers by touch model" in one.stdout


def examples(command: str) -> list[str]:
    text = cvj_cli(command, "--help").stdout if command else cvj_cli("--help").stdout
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    out = []
    for line in lines[start + 1 :]:
        if not line.strip().startswith("cvj "):
            break
        out.append(line.strip())
    return out


COMMANDS = ("validate", "run", "compare", "attribute", "upgrade", "report", "init")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_two_examples_that_parse_and_points_to_the_reference(command):
    help_text = cvj_cli(command, "--help").stdout
    assert "docs/model.md" in help_text
    ex = examples(command)
    assert len(ex) == 2, ex
    for line in ex:
        for part in line.replace("&&", "|").split("|"):
            args = shlex.split(part)
            if not args or args[0] != "cvj":
                continue
            sub = main.get_command(None, args[1])
            assert sub is not None, line
            sub.make_context(args[1], args[2:])  # unknown options or bad values raise


def test_the_validate_examples_run(tmp_path):
    for line in examples("validate"):
        p = cvj_cli(*shlex.split(line)[1:], cwd=cvj.default_scenario_path().parent.parent)
        assert p.returncode == 0 and p.stdout.startswith("ok: "), (line, p.stderr)


def test_init_writes_a_commented_starter_that_validates_and_runs(tmp_path):
    p = cvj_cli("init", "my-shop", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    f = tmp_path / "my-shop.toml"
    text = f.read_text()
    assert text.count("\n#") + text.count("  #") > 20 and 'name = "my-shop"' in text and "format = 2" in text
    p = cvj_cli("validate", f)
    assert p.returncode == 0 and p.stderr == "", p.stderr  # no warning
    p = cvj_cli("run", f, *STARTER_DAYS, "-q", "--threads", 1)
    assert p.returncode == 0 and "KPIs: my-shop" in p.stdout, p.stderr
    assert_user_error(cvj_cli("init", "my-shop", cwd=tmp_path), "already exists")
    assert_user_error(cvj_cli("init", "a/b", cwd=tmp_path), "NAME")
    p = cvj_cli("init", 'Boutique "B2B" [/]', "--out", tmp_path / "b.toml")
    assert p.returncode == 0, p.stderr
    assert cvj.load_scenario(tmp_path / "b.toml").name == 'Boutique "B2B" [/]'
