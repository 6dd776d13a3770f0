"""Reports: one offline HTML page of a finished run or study, with a PNG and a CSV of
every chart beside it.

``cvj report DIR`` (and ``--report`` on ``cvj run`` and ``cvj compare``) is one call::

    import cvj.report
    rep = cvj.report.report("results")      # writes results/report/index.html
    rep.path, [p.id for p in rep.charts]

:func:`build` reads and aggregates without writing (the chart specifications are in
``rep.panels``); :func:`write` writes a built report. Tables are read with DuckDB and
reduced to at most a few hundred points per series (:mod:`cvj.report.source`), charts
are Vega-Lite built with Altair plus one Vega Sankey diagram
(:mod:`cvj.report.charts`), and the page inlines vl-convert's JavaScript bundle
(:mod:`cvj.report.page`).
"""

from .page import PAGE, Report, build, report, write

__all__ = ["PAGE", "Report", "build", "report", "write"]
