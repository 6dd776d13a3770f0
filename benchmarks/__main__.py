"""``python -m benchmarks [--quick | --full] --out DIR``: the side-by-side table.

Prints the table (Markdown) and writes it to DIR as ``benchmarks.parquet``,
``benchmarks.json`` (with the memory, cold-start and target sections),
``benchmarks.md`` and ``throughput.png``. Nothing here asserts anything about speed:
each target is printed with its measured value and PASS or MISS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import suite


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0].strip("`: "))
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, one round each (CI: well under a minute)")
    size.add_argument("--full", action="store_true", help="also 10^8 customers (in-process x 30 days, fresh process x 365 days)")
    ap.add_argument("--out", required=True, type=Path, help="directory for the Parquet, JSON, Markdown and PNG outputs")
    args = ap.parse_args(argv)
    mode = suite.QUICK if args.quick else suite.FULL if args.full else suite.STANDARD
    command = "python -m benchmarks" + (" --quick" if args.quick else " --full" if args.full else "") + f" --out {args.out}"
    report = suite.main(mode, args.out, command)
    print(suite.render(report))
    for path in suite.write(report, args.out):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
