"""The day kernel: advance every customer one simulated day.

Only ``@njit`` functions over arrays live here. Per-customer state (8 bytes):

- ``stage``     uint8   0..9 (unaware .. promoter, lapsed)
- ``profile``   uint8   segment * 16 + responsiveness level
- ``acquired``  uint8   cause that moved the customer unaware -> aware (255: none)
- ``converted`` uint8   cause that moved the customer subscribed -> converted (255: none)
- ``revenue``   float32 money the customer has paid

and, only when a customers table is asked for, ``reached`` (uint16, 9 per customer):
the first day each stage aware..promoter was reached and the last day of lapsing
(0xFFFF: never).

Everything that couples customers (saturating reach, referrals, budgets) is folded by
the caller into the small per-day tables ``thr``, ``p_adv``, ``p_lapse``,
``cause_cum`` and ``buy_cum`` before the day runs; inside the day every customer reads
only its own state and its own counter-based random numbers.

Customers are processed in fixed chunks of ``CHUNK`` under ``prange``; each chunk
writes its own row of the count arrays, so the caller's in-order sum does not depend
on scheduling or on the number of threads.
"""

import numpy as np
from numba import prange

from .jit import PARALLEL, njit
from .rng import CHOICE, EVENT, INIT_LEVEL, INIT_STAGE, day_key, draw_at, to_unit

CHUNK = 1 << 15
LEVEL_BITS = 4
N_LEVELS = 1 << LEVEL_BITS
NONE = np.uint8(255)
NEVER = np.uint16(0xFFFF)
_S32 = np.uint64(32)
_S60 = np.uint64(60)

# stage ids (mirrors cvj.stages; kernels do not import cvj)
_UNAWARE, _AWARE, _ENGAGED, _SUBSCRIBED, _CONVERTED, _EXCITED = 0, 1, 2, 3, 4, 5
_PROMOTER, _LAPSED = 8, 9
_REFERRAL = 1
_LEAD_MAGNET, _ENTRY, _CORE = 0, 1, 2


def n_chunks(n_customers):
    return (n_customers + CHUNK - 1) // CHUNK


@njit(**PARALLEL)
def init_customers(stage, profile, acquired, converted, revenue, reached, track, key, seg_end, stage_cum):
    """Initial state. Segments are contiguous blocks ending at ``seg_end``; the starting
    stage and the responsiveness level are drawn per customer (day 0)."""
    n = stage.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    k_stage = day_key(key, 0, INIT_STAGE)
    k_level = day_key(key, 0, INIT_LEVEL)
    for ci in prange(chunks):
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        g = 0
        while seg_end[g] <= lo:
            g += 1
        for i in range(lo, hi):
            while seg_end[g] <= i:
                g += 1
            u = to_unit(draw_at(k_stage, i))
            s = 0
            while s < stage_cum.shape[0] - 1 and u >= stage_cum[s]:
                s += 1
            level = draw_at(k_level, i) >> _S60
            stage[i] = s
            profile[i] = g * N_LEVELS + level
            acquired[i] = NONE
            converted[i] = NONE
            revenue[i] = 0.0
            if track:
                for j in range(reached.shape[1]):
                    reached[i, j] = NEVER
                if s == _LAPSED:
                    reached[i, reached.shape[1] - 1] = 0
                elif s > 0:
                    reached[i, s - 1] = 0


@njit(**PARALLEL)
def advance_day(
    stage,
    profile,
    acquired,
    converted,
    revenue,
    reached,
    track,
    key,
    day,
    thr,
    cut_adv,
    cut_lapse,
    cause_cum,
    buy_cum,
    price,
    flows,
    buys,
    referred,
):
    """Advance every customer by one day ``day`` (1-based).

    Parameters
    ----------
    thr : uint64[profiles, 10]
        P(something happens today) * 2**32 for each (profile, stage).
    cut_adv, cut_lapse : float64[profiles, 10]
        Given an event with choice draw ``u``: ``u < cut_adv`` advances,
        ``u < cut_lapse`` lapses, otherwise a repeat purchase. Where no repeat
        purchase is possible the caller sets ``cut_lapse`` to exactly 1.
    cause_cum : float64[segments, 10, causes]
        Given an advance from a stage: cumulative probability of each cause.
    buy_cum : float64[offers]
        Given a repeat purchase: cumulative probability of each offer.
    price : float64[offers]
    flows : int64[chunks, segments, 10, causes + 1]   (out; last column = lapse)
    buys : int64[chunks, segments, offers]            (out)
    referred : int64[chunks, segments]                (out; conversions of referred customers)
    """
    n = stage.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    n_causes = cause_cum.shape[2]
    n_offers = buy_cum.shape[0]
    k_event = day_key(key, day, EVENT)
    k_choice = day_key(key, day, CHOICE)
    for ci in prange(chunks):
        flows[ci, :, :, :] = 0
        buys[ci, :, :] = 0
        referred[ci, :] = 0
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            s = stage[i]
            p = profile[i]
            t = thr[p, s]
            # No early exit for t == 0 (absorbed customers): the draw below rejects
            # them anyway, and a branch the CPU cannot predict once lapsed and active
            # customers mix cost up to 1.7x (benchmark profile, issue 6).
            if (draw_at(k_event, i) >> _S32) >= t:
                continue
            # something happens: which outcome, and why
            g = p >> LEVEL_BITS
            u = to_unit(draw_at(k_choice, i))
            pa = cut_adv[p, s]
            pl = cut_lapse[p, s]
            if u < pa:
                v = u / pa
                k = 0
                while k < n_causes - 1 and v >= cause_cum[g, s, k]:
                    k += 1
                flows[ci, g, s, k] += 1
                new = _AWARE if s == _LAPSED else s + 1
                stage[i] = new
                if s == _UNAWARE:
                    acquired[i] = k
                elif s == _ENGAGED:
                    buys[ci, g, _LEAD_MAGNET] += 1
                    revenue[i] += price[_LEAD_MAGNET]
                elif s == _SUBSCRIBED:
                    converted[i] = k
                    buys[ci, g, _ENTRY] += 1
                    revenue[i] += price[_ENTRY]
                    if acquired[i] == _REFERRAL:
                        referred[ci, g] += 1
                elif s == _EXCITED:
                    buys[ci, g, _CORE] += 1
                    revenue[i] += price[_CORE]
                if track and reached[i, new - 1] == NEVER:
                    reached[i, new - 1] = day
            elif u < pl:
                flows[ci, g, s, n_causes] += 1
                stage[i] = _LAPSED
                if track:
                    reached[i, reached.shape[1] - 1] = day
            else:
                v = (u - pl) / (1.0 - pl)
                o = 0
                while o < n_offers - 1 and v >= buy_cum[o]:
                    o += 1
                buys[ci, g, o] += 1
                revenue[i] += price[o]
