"""Read a finished run or study directory and aggregate it into the small tables the
charts show.

Every table of a run or study is read from its Parquet files with DuckDB and reduced
before it reaches Python: the page holds at most a few hundred points per series
whatever the population (a run of 10^7 customers has the same daily tables as one of
10^5; only the optional customers table grows with it, and that is grouped by day in
SQL). Files are listed by Python and handed to DuckDB as a list, so a directory name
with glob characters (``*``, ``[``) is read as it is.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import registry
from ..errors import OutputError
from ..names import escape
from ..output import MANIFEST
from ..stages import STAGES

#: the tables of a run that its report reads (``customers`` too, when it is there);
#: only these must exist, so a directory of an earlier cvj with fewer tables still reports
RUN_TABLES = ("summary", "daily_stages", "transitions", "finance")
STUDY_TABLES = registry.names(registry.STUDY_TABLES)
#: the tables of a study's runs that its report reads
STUDY_PARTITION_TABLES = ("finance", "budget_moves")
#: at most this many points per time series on the page (days are binned beyond it)
MAX_POINTS = 400
#: cohorts and ages of the retention table, in days
COHORT_DAYS = 30


def _err(root: Path, what: str) -> OutputError:
    return OutputError(f"{escape(os.fspath(root))}: {what}")


@dataclass(frozen=True)
class Output:
    """A cvj output directory: its kind (``run`` or ``study``) and manifest."""

    root: Path
    kind: str
    manifest: dict

    def files(self, table: str) -> list[str]:
        """The Parquet files of ``table`` (a run's parts or a study's partitions)."""
        base = self.root / table
        pattern = "*.parquet" if self.kind == "run" or table in STUDY_TABLES else "variant=*/replication=*/*.parquet"
        return sorted(os.fspath(p) for p in base.glob(pattern) if not p.name.startswith("."))


def open_output(path: str | os.PathLike) -> Output:
    """Check that ``path`` is a complete cvj run or study directory.

    Raises
    ------
    OutputError
        One line: the directory does not exist, is not cvj output (no readable
        ``_cvj.json``), is an incomplete study or a run that did not finish, or misses
        a table.
    """
    root = Path(path).absolute()
    if not root.is_dir():
        raise _err(root, "no such directory" if not root.exists() else "not a directory")
    try:
        info = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        raise _err(root, f"not a cvj run or study directory (no {MANIFEST})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _err(root, f"not a cvj run or study directory ({MANIFEST} is unreadable: {escape(str(exc))})") from None
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind not in ("run", "study"):
        raise _err(root, f"not a cvj run or study directory ({MANIFEST} says kind {escape(json.dumps(kind))})")
    if info.get("complete") is not True:
        if kind == "study":
            done = sum(1 for _ in (root / "summary").glob("variant=*/replication=*/*.parquet"))
            raise _err(
                root,
                f"the study did not finish ({done} of {info.get('runs', '?')} runs are there); "
                "finish it with cvj compare --resume, then report",
            )
        raise _err(root, "the run did not finish (its manifest is not marked complete)")
    out = Output(root, kind, info)
    for table in RUN_TABLES if kind == "run" else STUDY_TABLES + STUDY_PARTITION_TABLES:
        if not out.files(table):
            raise _err(root, f"the {kind} has no {table} table (no {table}/*.parquet): not a whole cvj {kind} output")
    return out


def _connect():
    import duckdb

    return duckdb.connect()


def _q(con, sql: str, **params) -> pa.Table:
    try:
        return con.sql(sql, params=params).to_arrow_table()
    except Exception as exc:  # a damaged or foreign Parquet file: one line, not a traceback
        import duckdb

        if isinstance(exc, duckdb.Error):
            raise OutputError(f"cannot read the tables: {escape(str(exc).splitlines()[0])}") from None
        raise


def _meta(path: str) -> dict[str, str]:
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"cvj.")}


def step_for(days: int, max_points: int = MAX_POINTS) -> int:
    """Days per point so that a series of ``days + 1`` days has at most ``max_points``."""
    return max(1, math.ceil((days + 1) / max_points))


def period_for(days: int) -> int:
    """Days per bar of the spend and CAC charts: weeks, or 30 days beyond three years."""
    return 7 if days <= 3 * 365 else COHORT_DAYS


# --------------------------------------------------------------------------- a run


@dataclass
class RunData:
    """The aggregates of a run directory (means over its replications)."""

    root: Path
    scenario: dict
    replications: int
    days: int
    summary: list[dict]
    stages: pa.Table  # day, stage, customers
    starts: dict[str, float]  # stage -> customers on day 0
    moves: pa.Table  # from_stage, to_stage, cause, customers (whole run)
    daily_money: pa.Table  # day, spend, revenue, cost (whole business)
    period: int
    channel_periods: pa.Table  # period_end, channel, spend, conversions, purchase_revenue
    daily_conversions: pa.Table  # day, conversions
    channels: list[str]
    cohorts: pa.Table | None = None  # cohort, day_converted, lapse_after, customers
    second_orders: pa.Table | None = None  # gap (null: no second order), customers
    #: from the orders table (format 2): second orders by days since the first order
    order_gaps: pa.Table | None = None  # gap, capped, orders
    first_orders: float | None = None  # orders with no earlier order (first-time buyers)
    #: a subscription's stocks by day (sampled): day, subscribers, in_trial, mrr
    subscriptions: pa.Table | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def currency(self) -> str:
        return str(self.scenario.get("currency", ""))


def read_run(out: Output) -> RunData:
    """Aggregate a run directory (see :class:`RunData`)."""
    con = _connect()
    f = {t: out.files(t) for t in (*RUN_TABLES, "customers", "orders", "subscriptions")}
    meta = _meta(f["summary"][0])
    try:
        scenario = json.loads(meta["cvj.scenario"])
    except (KeyError, ValueError):
        raise _err(out.root, "the summary table carries no scenario in its metadata: not cvj output") from None
    summary = _q(con, "select * from read_parquet($f) order by replication", f=f["summary"]).to_pylist()
    R = len(summary)
    days = int(summary[0]["days"])
    step = step_for(days)
    stages = _q(
        con,
        """select day, stage::varchar as stage, sum(customers)::double / $R as customers
           from read_parquet($f) where day % $step = 0 or day = $days
           group by all order by day, stage""",
        f=f["daily_stages"],
        R=R,
        step=step,
        days=days,
    )
    first = _q(
        con,
        "select stage::varchar as stage, sum(customers)::double / $R as n from read_parquet($f) where day = 0 group by all",
        f=f["daily_stages"],
        R=R,
    ).to_pydict()
    starts = dict(zip(first["stage"], first["n"]))
    moves = _q(
        con,
        """select from_stage::varchar as from_stage, to_stage::varchar as to_stage, cause::varchar as cause,
                  sum(customers)::double / $R as customers
           from read_parquet($f) group by all order by from_stage, to_stage, cause""",
        f=f["transitions"],
        R=R,
    )
    daily_money = _q(
        con,
        """select day, sum(spend) / $R as spend, sum(revenue) / $R as revenue, sum(cost) / $R as cost
           from read_parquet($f) group by day order by day""",
        f=f["finance"],
        R=R,
    )
    channels = [
        r[0]
        for r in con.sql(
            "select distinct item::varchar from read_parquet($f) where kind = 'channel'", params={"f": f["finance"]}
        ).fetchall()
    ]
    order = list(scenario.get("channels", {}))
    channels.sort(key=lambda c: order.index(c) if c in order else len(order))
    period = period_for(days)
    prices = _prices(scenario)
    # purchases a channel caused: the entry offer on subscribed -> converted, the core
    # offer on excited -> ascended (repeat purchases and upsells record no cause)
    channel_periods = _q(
        con,
        """with spend as (
               select (day - 1) // $P as p, item::varchar as channel, sum(spend) / $R as spend
               from read_parquet($fin) where kind = 'channel' group by all),
           caused as (
               select (day - 1) // $P as p, cause::varchar as channel,
                      sum(case when from_stage = 'subscribed' then customers else 0 end)::double / $R as conversions,
                      sum(customers * case when from_stage = 'subscribed' then $entry else $core end)::double / $R
                          as purchase_revenue
               from read_parquet($tr)
               where (from_stage = 'subscribed' and to_stage = 'converted')
                  or (from_stage = 'excited' and to_stage = 'ascended')
               group by all)
           select least((s.p + 1) * $P, $days) as period_end, s.channel, s.spend,
                  coalesce(c.conversions, 0) as conversions, coalesce(c.purchase_revenue, 0) as purchase_revenue
           from spend s left join caused c on s.p = c.p and s.channel = c.channel
           order by period_end, s.channel""",
        fin=f["finance"],
        tr=f["transitions"],
        R=R,
        P=period,
        days=days,
        entry=prices[0],
        core=prices[1],
    )
    daily_conversions = _q(
        con,
        """select day, sum(customers)::double / $R as conversions from read_parquet($f)
           where from_stage = 'subscribed' and to_stage = 'converted' group by day order by day""",
        f=f["transitions"],
        R=R,
    )
    data = RunData(
        root=out.root,
        scenario=scenario,
        replications=R,
        days=days,
        summary=summary,
        stages=stages,
        starts=starts,
        moves=moves,
        daily_money=daily_money,
        period=period,
        channel_periods=channel_periods,
        daily_conversions=daily_conversions,
        channels=channels,
    )
    if f["customers"]:
        _read_customers(con, f["customers"], data)
    if f["orders"]:
        _read_orders(con, f["orders"], f["finance"], data)
    if f["subscriptions"]:
        data.subscriptions = _q(
            con,
            """select day, sum(subscribers)::double / $R as subscribers, sum(in_trial)::double / $R as in_trial,
                      sum(mrr) / $R as mrr
               from read_parquet($f) where day % $step = 0 or day = $days group by day order by day""",
            f=f["subscriptions"],
            R=R,
            step=step,
            days=days,
        )
    return data


def _read_orders(con, files: list[str], finance: list[str], data: RunData) -> None:
    """Second orders by days since the first (the orders table counts every order after
    a customer's first by its number and its gap), and the first orders: every order
    (units of every offer but the lead magnet, which is free and not an order) less
    those with a gap."""
    R = data.replications
    data.order_gaps = _q(
        con,
        """select days_since_previous as gap, days_or_more as capped, sum(orders)::double / $R as orders
           from read_parquet($f) where order_number = 2 group by all order by gap""",
        f=files,
        R=R,
    )
    lead = "lead_magnet"  # its item in finance: cvj.scenario.Scenario.offer_names[OFFER_LEAD_MAGNET]
    (total,) = con.sql(
        "select sum(units) / $R from read_parquet($f) where kind = 'offer' and item::varchar <> $lead",
        params={"f": finance, "R": R, "lead": lead},
    ).fetchall()[0]
    (later,) = con.sql("select sum(orders)::double / $R from read_parquet($f)", params={"f": files, "R": R}).fetchall()[0]
    data.first_orders = float(total or 0.0) - float(later or 0.0)


def _prices(scenario: dict) -> tuple[float, float]:
    """What the entry offer and the core offer's sign-up sell for (a subscription's
    free trial: nothing)."""
    offers = scenario.get("offers", {})
    core = offers.get("core", {})
    sub = core.get("subscription") or {}
    signup = 0.0 if sub.get("trial_days") else float(core.get("price", 0.0))
    return float(offers.get("entry", {}).get("price", 0.0)), signup


def _read_customers(con, files: list[str], data: RunData) -> None:
    # grouped by conversion day and days to the lapse: at most days x days rows for
    # any population
    data.cohorts = _q(
        con,
        """select (day_converted - 1) // $C as cohort, day_converted,
                  case when day_lapsed >= day_converted then day_lapsed - day_converted end as lapse_after,
                  count(*)::double as customers
           from read_parquet($f) where day_converted is not null group by all""",
        f=files,
        C=COHORT_DAYS,
    )
    data.second_orders = _q(
        con,
        """select day_ascended - day_converted as gap, count(*)::double as customers
           from read_parquet($f) where day_converted is not null group by all order by gap""",
        f=files,
    )


# --------------------------------------------------------------------------- a study


@dataclass
class StudyData:
    """The tables of a study directory that its report shows."""

    root: Path
    study_json: str  # the study as cvj.study.Study.to_json() wrote it
    study: dict  # the same, parsed
    runs: pa.Table
    contrasts: pa.Table
    budgets: pa.Table  # variant, day, channel, budget, budget_min, budget_max
    moves: pa.Table  # variant, replication, day, from_channel, to_channel, amount, reason
    marketer_variants: list[str]

    @property
    def baseline_scenario(self) -> dict:
        return self.study["variants"][self.study["baseline"]]["scenario"]

    @property
    def currency(self) -> str:
        return str(self.baseline_scenario.get("currency", ""))


_HIVE = "hive_partitioning = true, hive_types = {'variant': VARCHAR, 'replication': INTEGER}"


def read_study(out: Output) -> StudyData:
    """Read a complete study directory (see :class:`StudyData`)."""
    con = _connect()
    runs_file = out.files("runs")[0]
    try:
        study_json = _meta(runs_file)["cvj.study"]
        study = json.loads(study_json)
        variants = study["variants"]
        days = max(int(v["scenario"]["market"]["days"]) for v in variants.values())
    except (KeyError, ValueError, TypeError):
        raise _err(out.root, "the runs table carries no study in its metadata: not cvj output") from None
    runs = _q(con, "select * from read_parquet($f) order by variant, replication", f=out.files("runs"))
    contrasts = _q(con, "select * from read_parquet($f)", f=out.files("contrasts"))
    marketer = [n for n, v in variants.items() if v.get("marketer", {}).get("policy", "fixed") != "fixed"]
    shown = [*marketer, study["baseline"]] if marketer else []
    managed = sorted({c for n in marketer for c in _managed(variants[n])})
    step = step_for(days)
    budgets = _q(
        con,
        f"""select variant, day, item::varchar as channel, avg(budget) as budget,
                   min(budget) as budget_min, max(budget) as budget_max
            from read_parquet($f, {_HIVE})
            where kind = 'channel' and budget is not null and list_contains($variants, variant)
              and list_contains($channels, item::varchar) and ((day - 1) % $step = 0 or day = $days)
            group by all order by variant, channel, day""",
        f=out.files("finance"),
        variants=shown,
        channels=managed,
        step=step,
        days=days,
    )
    moves = _q(
        con,
        f"""select variant, replication, day, from_channel, to_channel, amount, reason
            from read_parquet($f, {_HIVE}) order by variant, replication, day""",
        f=out.files("budget_moves"),
    )
    return StudyData(out.root, study_json, study, runs, contrasts, budgets, moves, marketer)


def _managed(variant: dict) -> list[str]:
    """The channels a variant's marketer manages (default: every channel with a budget)."""
    chosen = variant.get("marketer", {}).get("channels")
    if chosen:
        return list(chosen)
    return [n for n, c in variant["scenario"].get("channels", {}).items() if c.get("pricing") != "commission"]


__all__ = ["MAX_POINTS", "Output", "RunData", "StudyData", "open_output", "read_run", "read_study", "step_for"]


def stage_order(name: str) -> int:
    """Sort key of a stage name: the journey's order."""
    return STAGES.index(name) if name in STAGES else len(STAGES)
