"""The day tables' last step, fused: from the hazards of every (row, column) to the
kernel's event thresholds and outcome cuts in one pass, with no temporaries.

``cvj.model._outcomes`` is the NumPy statement of the same arithmetic (the test twin:
tests/test_day_tables.py checks the two equal bit for bit); this loop is what
``cvj.model.day_tables`` runs, because the NumPy form's broadcast temporaries cost more
than the day kernel itself at 10^5 customers. It runs on the day kernel's threads (its
``expm1`` per cell made it the largest serial part of a day once the day kernel thinned
the unaware).
"""

import math

import numpy as np
from numba import prange

from .jit import PARALLEL, njit

_TWO32 = 4294967296.0


@njit(**PARALLEL)
def outcomes(levels, adv, lam, uns, rho, row0, thr, cut_adv, cut_lapse, cut_unsub):
    """Fill rows ``row0 ..`` of the tables for advance hazards ``levels[g, l] * adv[g,
    w, c]`` (row ``(g * L + l) * W + w``), lapse ``lam[g, c]``, unsubscribe ``uns[g, w,
    c]`` and repeat ``rho[c]``:

    - ``thr = floor((1 - exp(-T)) * 2**32)`` with ``T = H + lam + uns + rho``;
    - ``cut_adv = H / T`` (0 where ``T = 0``);
    - ``cut_lapse = (H + lam) / T`` where an unsubscribe or a repeat purchase is
      possible, else 1;
    - ``cut_unsub = (H + lam + uns) / T`` where a repeat purchase is possible, else 1.
    """
    G, L = levels.shape
    W, C = adv.shape[1], adv.shape[2]
    # every cell is its own: the rows of (segment, level) run in parallel, and the
    # tables are the same on any number of threads
    for gl in prange(G * L):
        g = gl // L
        lv = gl % L
        m = levels[g, lv]
        for w in range(W):
            r = row0 + (g * L + lv) * W + w
            for c in range(C):
                h = m * adv[g, w, c]
                la = lam[g, c]
                u = uns[g, w, c]
                rp = rho[c]
                hl = h + la
                hlu = hl + u
                t = hlu + rp
                thr[r, c] = np.uint64(math.floor(-math.expm1(-t) * _TWO32))
                safe = t if t > 0.0 else 1.0
                cut_adv[r, c] = h / safe if t > 0.0 else 0.0
                cut_lapse[r, c] = hl / safe if (rp > 0.0 or u > 0.0) else 1.0
                cut_unsub[r, c] = hlu / safe if rp > 0.0 else 1.0
