"""The social graph of the network model, measured: degree distribution and clustering.

Builds the implicit graph of ``referrals.model = "network"`` (every contact of every
customer, from the same contact function the kernel uses) for one segment of
``--customers`` people with ``--contacts`` contacts each, at several clustering levels,
and prints with networkx: the out-degree (the contacts written), the in-degree and the
undirected degree (mean, standard deviation, 1st / 50th / 99th percentile), the average
clustering coefficient and the transitivity of the undirected graph, beside the
Watts-Strogatz closed form C = 3(K - 2) / (4(K - 1)) (1 - beta)^3 for a ring of degree
K whose edges are rewired with probability beta = 1 - clustering. docs/model.md
("Word of mouth") quotes its output::

    python -m benchmarks.network_graph [--customers 20000] [--contacts 20]
"""

from __future__ import annotations

import argparse

import networkx as nx
import numpy as np

from cvj.engine import Engine
from cvj.model import compile_scenario
from cvj.network import compile_network, contacts_of
from cvj.scenario import validate_scenario


def graph(customers: int, contacts: int, clustering: float) -> tuple[np.ndarray, nx.Graph]:
    raw = {
        "format": 2,
        "market": {"customers": customers, "days": 1},
        "referrals": {"model": "network", "rates": {"promoter": 0.1},
                      "network": {"contacts": contacts, "clustering": clustering}},
        "offers": {"entry": {"price": 9.0}, "core": {"price": 50.0}},
    }
    cm = compile_scenario(validate_scenario(raw))
    e = Engine(cm)
    c = contacts_of(cm, compile_network(cm), e.key, e.row, np.arange(customers))
    g = nx.Graph()
    g.add_nodes_from(range(customers))
    src = np.repeat(np.arange(customers), contacts)
    keep = src != c.ravel()
    g.add_edges_from(zip(src[keep].tolist(), c.ravel()[keep].tolist()))
    return c, g


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--contacts", type=int, default=20)
    args = ap.parse_args(argv)
    N, K = args.customers, args.contacts
    print(f"{N:,} customers, {K} contacts each (one segment)")
    print("| clustering | in-degree mean / sd / p1-p50-p99 | undirected degree mean / sd / p1-p50-p99 "
          "| average clustering | transitivity | Watts-Strogatz C(beta) |")
    print("|---|---|---|---|---|---|")
    c0 = 3 * (K - 2) / (4 * (K - 1))
    for cl in (0.0, 0.3, 0.6, 0.9, 1.0):
        c, g = graph(N, K, cl)
        ind = np.bincount(c.ravel(), minlength=N)
        deg = np.array([d for _, d in g.degree()])

        def show(x):
            p = np.percentile(x, [1, 50, 99])
            return f"{x.mean():.2f} / {x.std():.2f} / {p[0]:.0f}-{p[1]:.0f}-{p[2]:.0f}"

        ws = c0 * cl**3
        print(f"| {cl:.1f} | {show(ind)} | {show(deg)} | {nx.average_clustering(g):.3f} | "
              f"{nx.transitivity(g):.3f} | {ws:.3f} |")


if __name__ == "__main__":
    main()
