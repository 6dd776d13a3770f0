"""The report page and the files beside it.

``index.html`` is one self-contained file: the Vega, Vega-Lite and Vega-Embed
JavaScript (vl-convert's bundle) is inlined, every chart's specification with its data
sits in a ``<script type="application/json">`` element, and nothing is fetched (no CDN,
no fonts, no server), so the page opens offline and can be emailed. Every piece of
user text (scenario and study names, channel names, the currency) reaches the page
through Jinja2's HTML escaping or inside JSON whose ``<``, ``>`` and ``&`` are
escaped, so it can neither add markup nor end a script element.

Beside the page, for every chart, ``<id>.png`` (rendered by vl-convert without a
browser) and ``<id>.csv`` (the table behind it), so a chart can be rebuilt or pasted
into slides.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from ..output import REPORT_DIR, AtomicDir, write_manifest
from ..version import __version__
from . import charts, fmt
from .charts import Panel
from .source import Output, open_output, read_run, read_study

PAGE = "index.html"
#: PNGs at twice the CSS size: sharp on slides and high-density screens
PNG_SCALE = 2


@dataclass
class Report:
    """A report built in memory (:func:`build`) and, once written, where it is.

    Attributes
    ----------
    kind : "run" or "study"
    title, subtitle, logo, facts : str
        Header text (plain; escaped when the page is rendered).
    tiles : list of dict
        The KPI scorecard of a run report (empty for a study).
    table : dict or None
        The ranking table of a study report.
    panels : list of Panel
    tables : dict of pyarrow.Table
        Tables written beside the page besides the charts' (``kpis`` of a run).
    path : Path or None
        ``index.html`` once written.
    """

    kind: str
    source: Path
    title: str
    subtitle: str
    logo: str
    facts: str
    panels: list[Panel]
    tiles: list[dict] = field(default_factory=list)
    table: dict | None = None
    tables: dict[str, pa.Table] = field(default_factory=dict)
    path: Path | None = None

    @property
    def charts(self) -> list[Panel]:
        return [p for p in self.panels if p.spec is not None]


# --------------------------------------------------------------------------- building


def _logo(name: str) -> str:
    """Logo text: the name's initials (``handbag-shop`` -> ``HS``), at most 3."""
    words = [w for w in name.replace("_", " ").replace("-", " ").split() if w]
    text = "".join(w[0] for w in words[:3]).upper()
    return text or "cvj"


def build(path: str | os.PathLike) -> Report:
    """Read a finished run or study directory and build its report in memory.

    Raises
    ------
    OutputError
        ``path`` is not a complete cvj run or study directory.
    """
    out = open_output(path)
    return _build_run(out) if out.kind == "run" else _build_study(out)


def _build_run(out: Output) -> Report:
    d = read_run(out)
    sc = d.scenario
    name = str(sc.get("name", "scenario"))
    reps = f"{d.replications} replications (means)" if d.replications > 1 else "1 replication"
    facts = (
        f"Run of {int(d.summary[0]['customers']):,} customers over {d.days:,} days, seed {d.summary[0]['seed']}, "
        f"{reps}; money in {d.currency}."
    )
    return Report(
        kind="run",
        source=out.root,
        title=name,
        subtitle=str(sc.get("description", "")),
        logo=_logo(name),
        facts=facts,
        tiles=charts.scorecard(d),
        panels=charts.run_panels(d),
        tables={"kpis": charts.scorecard_table(d)},
    )


def _build_study(out: Output) -> Report:
    from ..console import verdict

    s = read_study(out)
    st = s.study
    base = s.baseline_scenario
    k = st["rank_by"]
    cur = s.currency
    crn = "common random numbers" if st.get("common_random_numbers", True) else "independent random numbers"
    facts = (
        f"Study of {len(st['variants'])} variants x {st['replications']} replications with {crn}; baseline "
        f"{st['baseline']}; scenario {base.get('name', '')} ({int(base['market']['customers']):,} customers, "
        f"{int(base['market']['days']):,} days); money in {cur}."
    )
    conf = float(st.get("confidence", 0.95))
    rows = []
    by = {(c["variant"], c["kpi"]): c for c in s.contrasts.to_pylist()}
    for r in charts.ranking_rows(s):
        c = by.get((r["variant"], k))
        word = r["verdict"] if c is None else verdict(c, conf)
        css = charts.verdict_word(word) if c is not None else ""
        mean = fmt.kpi(k, r["mean"], cur) + (f" ± {fmt.kpi(k, r['halfwidth'], cur)}" if r["halfwidth"] is not None else "")
        diff = "" if c is None else f"{fmt.kpi(k, c['mean_difference'], cur)} ± {fmt.kpi(k, c['halfwidth'], cur)}"
        desc = st["variants"][r["variant"]].get("description", "")
        rows.append(
            [
                {"text": str(r["rank"]), "css": "text"},
                {"text": r["variant"], "css": "text"},
                {"text": mean, "css": ""},
                {"text": diff, "css": ""},
                {"text": word, "css": f"text {css.replace(' ', '-')}"},
                {"text": desc, "css": "text wrap"},
            ]
        )
    unclear = [c for c in s.contrasts.to_pylist() if c["p_value"] is not None and not c["significant"]]
    notes = []
    if unclear:
        notes.append(
            f"Not significant at {conf:.0%}: "
            + ", ".join(f"{c['variant']} on {c['kpi']}" for c in unclear)
            + " (the data cannot tell these from the baseline)."
        )
    table = {
        "title": f"Ranking by {k}",
        "question": "Which variant should the strategist pick?",
        "header": [
            {"text": h, "css": css}
            for h, css in (
                ("#", "text"),
                ("variant", "text"),
                (f"{k} (mean, {conf:.0%} CI)", ""),
                (f"vs {st['baseline']}", ""),
                ("verdict", "text"),
                ("what it is", "text"),
            )
        ],
        "rows": rows,
        "notes": notes,
    }
    name = str(st.get("name", "study"))
    return Report(
        kind="study",
        source=out.root,
        title=name,
        subtitle=str(st.get("description", "")),
        logo=_logo(str(base.get("name", name))),
        facts=facts,
        table=table,
        panels=charts.study_panels(s),
        tables={"runs": s.runs, "contrasts": s.contrasts},
    )


# --------------------------------------------------------------------------- rendering


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def script_json(spec: dict) -> str:
    """``spec`` as JSON that is safe inside an HTML ``<script>`` element: ``<``, ``>``
    and ``&`` (and the JavaScript line separators) are written as ``\\u`` escapes, so
    no string in it can close the element or open a comment; NaN and infinities (not
    JSON) become null."""
    text = json.dumps(_finite(spec), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _vl_version() -> str:
    """The Vega-Lite version Altair writes (``6.4``): the bundle and the PNGs use the same."""
    import altair as alt

    return alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]


def javascript_bundle() -> str:
    """vl-convert's bundle of Vega, Vega-Lite and Vega-Embed (about 0.9 MB).

    Building it takes vl-convert a few seconds, so it is kept in the user's cache
    directory (``CVJ_CACHE_DIR`` or ``platformdirs.user_cache_dir("cvj")``), one file
    per vl-convert and Vega-Lite version; an unwritable cache only costs the time.
    """
    import vl_convert as vlc

    vl = _vl_version()
    cache = os.environ.get("CVJ_CACHE_DIR")
    if not cache:
        import platformdirs

        cache = platformdirs.user_cache_dir("cvj", appauthor=False)
    path = Path(cache) / "report" / f"vega-bundle-vlc{vlc.__version__}-vl{vl}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vlc.javascript_bundle(vl_version=vl)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(bundle, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
    return bundle


def render(report: Report, bundle: str | None = None) -> str:
    """The HTML of the page (autoescaped: user text is text, never markup)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(resources.files(__package__).joinpath("template.html").read_text(encoding="utf-8"))
    panels = []
    for p in report.panels:
        files = []
        if p.spec is not None:
            files.append(f"{p.id}.png")
        if p.data is not None:
            files.append(f"{p.id}.csv")
        files += [f"{name}.csv" for name in p.extra]
        panels.append(
            {
                "id": p.id,
                "title": p.title,
                "question": p.question,
                "notes": p.notes,
                "grammar": p.grammar,
                "spec_json": Markup(script_json(p.spec)) if p.spec is not None else None,
                "files": files,
            }
        )
    source = os.fspath(report.source)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"cvj {__version__} report of {source}, {when}. Tables:"
    return template.render(
        version=__version__,
        title=report.title,
        subtitle=report.subtitle,
        logo=report.logo,
        facts=report.facts,
        tiles=report.tiles,
        table=report.table,
        panels=panels,
        footer=footer,
        footer_files=[f"{n}.csv" for n in report.tables],
        bundle=Markup((bundle if bundle is not None else javascript_bundle()).replace("</script", "<\\/script")),
    )


def png(panel: Panel) -> bytes:
    """The chart as PNG, rendered by vl-convert (no browser)."""
    import vl_convert as vlc

    if panel.grammar == "vega":
        return vlc.vega_to_png(panel.spec, scale=PNG_SCALE)
    return vlc.vegalite_to_png(panel.spec, vl_version=_vl_version(), scale=PNG_SCALE)


def _csv(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(table.replace_schema_metadata(None), path)


# --------------------------------------------------------------------------- writing


def write(report: Report, out: str | os.PathLike | None = None) -> Path:
    """Write the page, the PNGs and the CSVs into ``out`` (default ``DIR/report``).

    The directory is built under a hidden temporary name beside it and renamed into
    place (:class:`cvj.output.AtomicDir`), so a reader never sees half a report. An
    existing ``out`` is replaced only if it is empty or an earlier report holding
    nothing cvj did not write (its ``_cvj.json`` lists every file).

    Returns
    -------
    Path
        The path of ``index.html``.
    """
    target = Path(out) if out is not None else report.source / REPORT_DIR
    with AtomicDir(target, force=True, kind="report") as tmp:
        files = []
        drawn = report.charts
        # vl-convert renders in its own threads: a few at once save about a third of the time
        with ThreadPoolExecutor(max_workers=min(4, len(drawn) or 1)) as pool:
            for p, image in zip(drawn, pool.map(png, drawn)):
                (tmp.path / f"{p.id}.png").write_bytes(image)
                files.append(f"{p.id}.png")
        for p in report.panels:
            for name, table in ((p.id, p.data), *p.extra.items()):
                if table is not None:
                    _csv(table, tmp.path / f"{name}.csv")
                    files.append(f"{name}.csv")
        for name, table in report.tables.items():
            _csv(table, tmp.path / f"{name}.csv")
            files.append(f"{name}.csv")
        (tmp.path / PAGE).write_text(render(report), encoding="utf-8")
        files.append(PAGE)
        write_manifest(
            tmp.path,
            {
                "kind": "report",
                "complete": True,
                "of": report.kind,
                "source": os.fspath(report.source),
                "files": sorted(files),
                "version": __version__,
            },
        )
        root = tmp.commit()
    report.path = root / PAGE
    return report.path


def report(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Report:
    """Build the report of a finished run or study directory and write it.

    Parameters
    ----------
    path : path
        A directory written by ``cvj run --out`` or ``cvj compare --out`` (complete).
    out : path, optional
        Where to write the report (default ``path/report``).

    Returns
    -------
    Report
        With ``path`` set to the written ``index.html``.

    Raises
    ------
    OutputError
        ``path`` is not a complete cvj output, or ``out`` cannot be written.
    """
    rep = build(path)
    write(rep, out)
    return rep


__all__ = ["PAGE", "REPORT_DIR", "Report", "build", "javascript_bundle", "render", "report", "script_json", "write"]
