"""The journey model with memory in Mesa: one :class:`mesa.Agent` per customer.

The pure-Mesa reference (:mod:`cvj.reference`) is written from the specification for
scenario format 1 (memoryless customers). This is the Mesa version of the model the
kernel runs now, for the benchmark: a :class:`Customer` agent carries the kernel's
state as attributes (stage, table row, slot, orders, day of the last activity and of
the last order, acquiring and converting cause, revenue) and its :meth:`Customer.step`
is one day of :func:`benchmarks.python_impl.customer_day`; a :class:`mesa.Model` builds
the day's tables (:func:`cvj.model.channel_reach`, :func:`cvj.model.day_tables`, as the
engine does) and steps every agent. Random numbers come from the model's ``random``
(seeded through ``mesa.Model(rng=...)``).

So kernel, NumPy, pure Python and Mesa run the same model on the same tables; what
differs is only how the per-customer work is done. ``tests/test_benchmark_models.py``
checks the Mesa version against the kernel in distribution.
"""

from __future__ import annotations

import mesa
import numpy as np

from cvj.model import MAX_DWELL, Compiled, channel_reach, day_tables
from cvj.scenario import RESPONSIVENESS_LEVELS
from cvj.stages import N_STAGES

from .python_impl import NEVER, NONE, Day, customer_day, finish_day, new_history


class Customer(mesa.Agent):
    """One customer with the kernel's per-customer state (see ``kernels/journey.py``)."""

    def __init__(self, model: MemoryModel, stage: int, row: int, sx: int):
        super().__init__(model)
        self.stage = stage
        self.row = row  # (segment * 16 + level) * W + age band * 2 + email permission
        self.sx = sx  # (stage, order class) slot
        self.orders = 0
        self.clock = 0  # day of the last activity (a stage move or an order)
        self.last_order = NEVER
        self.acquired = NONE
        self.converted = NONE
        self.revenue = 0.0

    def step(self) -> None:
        """One day: nothing, an advance, a lapse, an unsubscribe or a repeat purchase."""
        m = self.model
        customer_day(self, m.today, m.random.random)


class MemoryModel(mesa.Model):
    """The customers of one (scenario, replication) as Mesa agents, advanced one day
    per :meth:`step`; the same interface as :class:`cvj.engine.Engine` where the
    benchmarks need it (``done``, ``day``, ``history``, ``counts``, ``cells``).

    Parameters
    ----------
    compiled : Compiled
    replication : int
        With the scenario's seed, seeds the model's generators.
    """

    def __init__(self, compiled: Compiled, replication: int = 0):
        cm = compiled
        super().__init__(rng=cm.seed * 1_000_003 + int(replication))
        self.cm = cm
        self.replication = int(replication)
        self.key = self.random.getrandbits(64)  # for realised_funnel's generator
        rnd = self.random.random
        W, B = cm.width, cm.n_bands
        band_cum = cm.band_cum.tolist()
        permitted = cm.permitted.tolist()
        stage_cum = cm.stage_cum.tolist()
        lay = cm.layout
        self._col_of = lay.colf.reshape(-1, MAX_DWELL + 1).tolist()
        self._sx_of = lay.sx_of.tolist()
        self._crow_of = cm.crow_of.tolist()
        self._fb_of = cm.fb_of.tolist()
        start = 0
        for g, end in enumerate(int(x) for x in cm.seg_end):
            for _ in range(start, end):
                u = rnd()
                s = 0
                while s < N_STAGES - 1 and u >= stage_cum[s]:
                    s += 1
                level = self.random.randrange(RESPONSIVENESS_LEVELS)
                b = 0
                if B > 1:
                    ub = rnd()
                    while b < B - 1 and ub >= band_cum[g][b]:
                        b += 1
                row = (g * RESPONSIVENESS_LEVELS + level) * W + b * 2 + permitted[s]
                Customer(self, s, row, self._sx_of[s][int(cm.start_orders[s])]).orders = int(cm.start_orders[s])
            start = end
        self.history = new_history(cm)
        GB = cm.n_segments * cm.n_bands
        counts = np.zeros((GB, N_STAGES), np.int64)
        cells = np.zeros((cm.n_segments * W, lay.n_cols), np.int64)
        for a in self.agents:
            counts[self._fb_of[a.row], a.stage] += 1
            cells[self._crow_of[a.row], self._col_of[a.sx][1]] += 1  # day 1: one day after day 0
        self.history.stages[0] = counts
        self.counts = counts.copy()
        self.cells = cells if cm.count_cells else None
        self.stock = np.zeros(cm.n_channels)
        self.day = 0
        self.today: Day | None = None

    @property
    def done(self) -> bool:
        return self.day >= self.cm.days

    def step(self) -> None:
        """Advance one day."""
        if self.done:
            raise RuntimeError(f"the run is over: all {self.cm.days} days were simulated")
        cm = self.cm
        d = self.day + 1
        b = cm.budget[d].copy()
        reach = channel_reach(cm, self.counts, self.stock, b, self.cells)
        tables = day_tables(cm, self.counts, reach, d)
        self.today = Day(cm, tables, d, self._col_of, self._sx_of, self._crow_of, self._fb_of, self.cells is not None)
        # customers do not meet within a day (everything that couples them is in the
        # day's tables), so the order they are stepped in does not matter: no shuffle
        self.agents.do("step")
        self.counts, self.cells = finish_day(
            self.history, cm, self.today, reach, tables, b, self.counts, self.key, self.cells
        )
        self.stock = reach.stock
        self.day = d


def simulate(compiled: Compiled, replication: int = 0) -> MemoryModel:
    """Run one replication to the horizon; the model holds the history."""
    m = MemoryModel(compiled, replication)
    while not m.done:
        m.step()
    return m
