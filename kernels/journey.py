"""The day kernel: advance every customer one simulated day.

Only ``@njit`` functions over arrays live here. Per-customer state (15 bytes and a bit):

- ``stage``      uint8   0..9 (unaware .. promoter, lapsed)
- ``row``        uint16  the customer's row of the day tables:
                         ((segment * 16 + responsiveness level) * W + age band * 2 + permission),
                         ``W`` = 2 x age bands; bit 0 is the email permission
- ``sx``         uint8   the customer's (stage, order class) slot in the column table
- ``orders``     uint8   orders so far (entry, core and repeat; saturates at 255)
- ``clock``      uint16  day of the customer's last activity: a stage move or an order
                         (modulo 2**16: a subscriber who starts the run part-way through
                         a billing period has a clock "before day 0")
- ``last_order`` uint16  day of the last order (0xFFFF: never)
- ``acquired``   uint8   cause that moved the customer unaware -> aware (255: none)
- ``converted``  uint8   cause that moved the customer subscribed -> converted (255: none)
- ``revenue``    float32 money the customer has paid
- ``active``     1 bit   past ``unaware`` (uint64 words, bit ``i % 64`` of word ``i // 64``):
                         the day looks at these one by one, and thins the others

and, only when a customers table is asked for, ``reached`` (uint16, 9 per customer):
the first day each stage aware..promoter was reached and the last day of lapsing
(0xFFFF: never), and ``reached_by`` (uint8, 8 per customer): the cause of that first
move into each stage aware..promoter (255: never), the customer's touch path.

Memory enters through one more small index: the column is the bucket of days since
the last activity in the customer's (stage, order class) slot,

    col = colf[sx * 512 + min(day - clock, 511)]
    "something happens" <=> draw < thr[row, col]

so "nothing happens today" is three loads, two table lookups, one draw and one compare.

The unaware are *thinned* (see ``thin_k`` of :func:`advance_day`): an unaware
customer's uniform takes its top bits from a few draws per block of 64 customers, so a
day with small chances for the unaware finds, from ``k`` draws per block, the one
customer in ``2**k`` that can have an event, and reads only their state. Most
customer-days of a shop are spent unaware.

The day runs in two passes over blocks of ``BLOCK`` = 64 customers: the first only
reads (the column, the draw, the compare) and sets one bit per customer with an event
in a mask, and one per customer whose column changes tomorrow without an event (its
audience cell moves); the second visits only the customers flagged, in order. Events
are rare (at most 0.17 % of the default's customer-days over its year), so the first
pass is the kernel's cost, and the audience counts cost only where a customer changes
cell: the kernel reports the day's changes to the counts, not the counts.

Everything that couples customers (reach, referrals, budgets, audiences) is folded by
the caller into the per-day tables ``thr``, ``cut_*`` and ``cause_cum`` before the day
runs; inside the day every customer reads only its own state and its own
counter-based random numbers.

Customers are processed in fixed chunks of ``CHUNK`` under ``prange``. Every output is
an integer count: each thread adds into its own row of the count arrays (at least
``max_threads()`` rows), and the caller's sum of the rows is exact, so it does not
depend on scheduling or on the number of threads. (Rows per chunk cost a sum over 15
MB a day at 10^7 customers.)
"""

import numpy as np
from numba import get_thread_id, prange

from .jit import PARALLEL, SERIAL, njit
from .rng import CANDIDATE, CHOICE, EVENT, INIT_BAND, INIT_LEVEL, INIT_PHASE, INIT_STAGE, day_key, draw_at, to_unit

CHUNK = 1 << 15
LEVEL_BITS = 4
N_LEVELS = 1 << LEVEL_BITS
DWELL_BITS = 9
MAX_DWELL = (1 << DWELL_BITS) - 1  # days since the last activity are capped here
NONE = np.uint8(255)
NEVER = np.uint16(0xFFFF)
PERMISSION = np.uint16(1)
CLOCK_MASK = 0xFFFF  # days since the clock are taken modulo 2**16 (see ``clock``)
_S32 = np.uint64(32)
_S60 = np.uint64(60)
#: customers per block of the day's first pass (one bit each in a uint64 mask)
BLOCK = 64
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_S58 = np.uint64(58)
_S63 = np.uint64(63)
_MASK16 = np.uint64(CLOCK_MASK)
_DWELL_BITS = np.uint64(DWELL_BITS)
_MAX_DWELL = np.uint64(MAX_DWELL)
# the index of a mask's lowest set bit: de Bruijn multiplication (Leiserson, Prokop and
# Randall 1998), exact for every single-bit uint64
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_S3 = np.uint64(3)
_S24 = np.uint64(24)
_S40 = np.uint64(40)
#: the deepest thinning of the unaware (see :func:`advance_day`, ``thin_k``)
THIN_MAX = 8
#: a block with more customers to visit than this is scanned whole (branch-free)
SPARSE = 16
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_CTZ = np.zeros(64, np.int64)
for _j in range(64):
    _CTZ[((1 << _j) * 0x03F79D71B4CB0A89 & 0xFFFFFFFFFFFFFFFF) >> 58] = _j

# stage, cause and offer ids (mirrors cvj.stages; kernels do not import cvj.stages)
_UNAWARE, _AWARE, _ENGAGED, _SUBSCRIBED, _CONVERTED, _EXCITED, _ASCENDED = 0, 1, 2, 3, 4, 5, 6
_PROMOTER, _LAPSED = 8, 9
N_STAGES = 10
_REFERRAL = 1
_LEAD_MAGNET, _ENTRY, _CORE = 0, 1, 2


def n_chunks(n_customers):
    return (n_customers + CHUNK - 1) // CHUNK


@njit(**PARALLEL)
def init_customers(
    stage, row, sx, orders, clock, last_order, acquired, converted, revenue, reached, track,
    key, seg_end, stage_cum, band_cum, permitted, start_orders, width, sx_of, phase, active, thin,
):
    """Initial state. Segments are contiguous blocks ending at ``seg_end``; the starting
    stage, the responsiveness level and the age band (``band_cum[segment]``, cumulative
    shares) are drawn per customer (day 0). ``permitted[stage]`` is 1 where a customer
    starting in that stage has given email permission and ``start_orders[stage]`` the
    orders a customer starting there has made (a buyer of the entry offer 1, of the core
    offer too 2; no day of the last order is known); ``sx_of[stage, orders]`` is the
    column-table slot. ``phase[stage]`` > 0 spreads the starting customers' clocks over
    the ``phase`` days before day 0 (subscribers part-way through a billing period).

    ``active`` (uint64[ceil(n / 64)], out): bit ``i % 64`` of word ``i // 64`` is set
    for a customer past ``unaware`` when ``thin`` (the day kernel thins the unaware,
    see :func:`advance_day`), for every customer otherwise."""
    n = stage.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    n_bands = band_cum.shape[1]
    k_stage = day_key(key, 0, INIT_STAGE)
    k_level = day_key(key, 0, INIT_LEVEL)
    k_band = day_key(key, 0, INIT_BAND)
    k_phase = day_key(key, 0, INIT_PHASE)
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
            b = 0
            if n_bands > 1:
                ub = to_unit(draw_at(k_band, i))
                while b < n_bands - 1 and ub >= band_cum[g, b]:
                    b += 1
            stage[i] = s
            row[i] = (g * N_LEVELS + level) * width + b * 2 + permitted[s]
            orders[i] = start_orders[s]
            sx[i] = sx_of[s, start_orders[s]]
            clock[i] = 0
            if phase[s] > 0:
                back = np.int64(to_unit(draw_at(k_phase, i)) * phase[s])
                clock[i] = (-back) & CLOCK_MASK
            last_order[i] = NEVER
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
        # the chunk's words of the active bitmap (CHUNK is a multiple of 64: no word is
        # shared between chunks)
        for wd in range(lo >> 6, ((hi - 1) >> 6) + 1):
            m = _ZERO
            for i in range(wd << 6, min(hi, (wd + 1) << 6)):
                if stage[i] != _UNAWARE or not thin:
                    m |= _ONE << np.uint64(i & 63)
            active[wd] = m


@njit(**PARALLEL)
def count_customers(stage, row, sx, clock, fb_of, crow_of, colf, day, stages, cells):
    """Customers by (segment x band, stage) into ``stages`` (int64[threads, GB, 10])
    and, if ``cells`` has columns, by (segment x flag cell, column as of ``day``) into
    ``cells`` (int64[threads, rows, cols]). Each thread adds into its own row; the
    caller sums the rows (exact in any order)."""
    n = stage.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    stages[...] = 0
    cells[...] = 0
    n_cols = cells.shape[2]
    for ci in prange(chunks):
        w = get_thread_id()
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            r = row[i]
            stages[w, fb_of[r], stage[i]] += 1
            if n_cols > 0:
                dw = (day - np.int64(clock[i])) & CLOCK_MASK
                if dw > MAX_DWELL:
                    dw = MAX_DWELL
                cells[w, crow_of[r], colf[(np.int64(sx[i]) << DWELL_BITS) + dw]] += 1


@njit(**PARALLEL)
def advance_day(
    stage,
    row,
    sx,
    orders,
    clock,
    last_order,
    acquired,
    converted,
    revenue,
    reached,
    reached_by,
    track,
    key,
    day,
    colf,
    sx_of,
    crow_of,
    fb_of,
    thr,
    cut_adv,
    cut_lapse,
    cut_unsub,
    cause_cum,
    buy_cum,
    price,
    memo,
    start_offer,
    first_pay_at,
    ref_block,
    flows,
    buys,
    first_touch,
    cells,
    gaps,
    subs,
    active,
    thin_k,
):
    """Advance every customer by one day ``day`` (1-based).

    Parameters
    ----------
    colf : int32[slots * 512]
        Column of (slot, days since the last activity capped at 511), flat.
    sx_of : uint8[10, 256]
        Slot of (stage, orders so far).
    crow_of, fb_of : int64[rows]
        For each table row: its (segment, flag cell) row of ``cause_cum`` and its
        (segment, age band) index in the counts.
    thr : uint64[rows, cols]
        P(something happens today) * 2**32 for each (row, column).
    cut_adv, cut_lapse, cut_unsub : float64[rows, cols]
        Given an event with choice draw ``u``: ``u < cut_adv`` advances, ``u < cut_lapse``
        lapses, ``u < cut_unsub`` unsubscribes (loses the email permission, stays in its
        stage), otherwise a repeat purchase. Where no repeat purchase is possible the
        caller sets ``cut_unsub`` to exactly 1 (and ``cut_lapse`` too where no
        unsubscribe is possible).
    cause_cum : float64[segments * W, cols, causes]
        Given an advance: cumulative probability of each cause.
    buy_cum : float64[cols, offers]
        Given a repeat purchase: cumulative probability of each offer.
    price : float64[offers]
    memo : uint8[10 + offers]
        ``memo[s]``: 1 where a move on from stage ``s`` restarts the clock;
        ``memo[10 + o]``: 1 where a repeat purchase of offer ``o`` restarts the clock
        and counts as an order. All 1 except in a subscription shop, where a
        subscriber's clock runs from the last bill (moves between the subscriber
        stages and upsells leave it) and its orders count the bills.
    start_offer : int
        The offer a first-time buyer (at most one order so far) gets on the move
        excited -> ascended: the core offer, or a subscription's free trial (its own
        offer); anyone else buys the core offer.
    ref_block : int
        0, or the first row of the rows of customers acquired by referral: a customer
        the day's move unaware -> aware acquires by referral moves to row ``row +
        ref_block`` (same segment, level, age band and permission; its own chances).
    first_pay_at : int
        -1 without a subscription. With one, a sign-up that pays is a first payment,
        and so is a bill paid with exactly ``first_pay_at`` orders so far (2: the
        first bill after a trial; 1 without a trial, which no bill matches).
    flows : int64[threads, segments * bands, 10, causes + 2]
        (out) moves out of each stage by cause; column ``causes``: lapses;
        ``causes + 1``: unsubscribes (no move).
    buys : int64[threads, segments * bands, offers]          (out)
    first_touch : int64[threads, segments * bands, causes + 1]
        (out) entry purchases (conversions) by the cause that acquired the customer
        (its move unaware -> aware); column ``causes``: customers who were past
        ``unaware`` at the start. Column 1 (referral) counts the referred sales.
    cells : int32[threads, segments * W, cols]               (out, only if it has rows)
        The day's changes to the customers by (segment, flag cell, column): -1 for a
        customer's cell with today's column, +1 for its cell at the end of the day with
        the column as of tomorrow, where the two differ. Today's counts plus these are
        what the next day's audiences count.
    gaps : int64[threads, order classes, MAXG + 1]           (out)
        Repeat orders by the number of earlier orders (capped) and days since the
        previous order (capped at MAXG).
    subs : int64[threads, segments * bands, causes + 3]       (out)
        First payments of a subscription by the cause that acquired the customer
        (column ``causes``: customers past ``unaware`` at the start); column
        ``causes + 1``: trials that ended without a payment, ``causes + 2``: trials
        that ended with one (these are among the first payments).
    active : uint64[ceil(n / 64)]
        (in/out) bit ``i % 64`` of word ``i // 64``: customer ``i`` is visited one by
        one; a customer without its bit is ``unaware`` and is thinned (below). The day
        sets the bit of every customer it moves past ``unaware``.
    thin_k : int
        0 .. :data:`THIN_MAX`: how deep the day thins the unaware. An unaware customer
        (no ``active`` bit) has an event when its 32-bit *unaware uniform* is below
        ``thr[row, col]`` (probability ``thr / 2**32``, as for everyone): its top 8
        bits are bit ``i % 64`` of 8 ``CANDIDATE`` draws for its block of 64 customers
        (the first draw's is the top bit), its low 24 the top 24 bits of its ``EVENT``
        draw. Where every unaware row's ``thr`` is at most ``2**(32 - thin_k)``, only
        a customer whose first ``thin_k`` bits are 0 (a *candidate*, probability
        ``2**-thin_k``) can have an event, and the day looks at the candidates only.
        The outcome does not depend on ``thin_k``; the caller picks the largest valid
        one. The rule is monotone in ``thr`` for fixed draws (common random numbers).
    """
    n = stage.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    n_causes = cause_cum.shape[2]
    n_offers = buy_cum.shape[1]
    maxg = gaps.shape[2] - 1
    n_oc = gaps.shape[1]
    count = cells.shape[1] > 0
    k_event = day_key(key, day, EVENT)
    k_choice = day_key(key, day, CHOICE)
    k_cand = day_key(key, day, CANDIDATE)
    uday = np.uint64(day)
    flows[...] = 0
    buys[...] = 0
    first_touch[...] = 0
    gaps[...] = 0
    subs[...] = 0
    cells[...] = 0
    # one column per slot (a memoryless layout, e.g. every format-1 scenario): the
    # column needs no clock, and no customer changes column without an event
    flat = True
    for x in range(colf.shape[0] >> DWELL_BITS):
        if colf[x << DWELL_BITS] != colf[(x << DWELL_BITS) + MAX_DWELL]:
            flat = False
    for ci in prange(chunks):
        # the counts are integers, so each thread adds into its own row (summed exactly
        # in any order) instead of each chunk writing a row the caller must add up
        w = get_thread_id()
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        for b in range(lo, hi, BLOCK):
            e = min(hi, b + BLOCK)
            # First pass over the block: which customers have an event today, and which
            # change their column tomorrow without one (bit masks, bit j: customer b + j)
            shift = np.uint64(BLOCK - (e - b))
            valid = _ALL >> shift
            a = active[b >> 6] & valid
            m_ev = _ZERO
            m_ch = _ZERO
            if a != _ZERO:
                if a == valid or _popcount(a) > SPARSE:
                    # many to visit: the branch-free scan of the whole block, masked
                    if flat:
                        m_ev = _scan_flat(b, e, k_event, sx, row, colf, thr)
                    elif count:
                        m_ev, m_ch = _scan_moves(b, e, uday, k_event, clock, sx, row, colf, thr)
                    else:
                        m_ev = _scan(b, e, uday, k_event, clock, sx, row, colf, thr)
                    m_ev = (m_ev >> shift) & a
                    m_ch = (m_ch >> shift) & a
                else:
                    m_ev, m_ch = _scan_sparse(b, a, uday, k_event, clock, sx, row, colf, thr, count and not flat)
            cand = ~a & valid
            if cand != _ZERO:
                # the unaware: the candidates (the first thin_k bits of their uniform are
                # 0), then their uniform in full (see ``thin_k``)
                wk = np.uint64(b >> 6) << _S3
                for t in range(thin_k):
                    cand &= ~draw_at(k_cand, wk + np.uint64(t))
                if cand != _ZERO:
                    m_ev |= _scan_thinned(b, cand, wk, k_cand, uday, k_event, clock, sx, row, colf, thr)
            m = m_ev | m_ch
            # Second pass: only the customers flagged, in order
            while m != _ZERO:
                low = m & (_ZERO - m)
                j = _CTZ[(low * _DEBRUIJN) >> _S58]
                m ^= low
                i = b + j
                r = row[i]
                dw = (day - np.int64(clock[i])) & CLOCK_MASK
                if dw > MAX_DWELL:
                    dw = MAX_DWELL
                col = colf[(np.int64(sx[i]) << DWELL_BITS) + dw]
                if m_ev & low:
                    _event(
                        i, w, r, col, day, k_choice, stage, row, sx, orders, clock, last_order, acquired,
                        converted, revenue, reached, reached_by, track, sx_of, crow_of, fb_of, cut_adv,
                        cut_lapse, cut_unsub, cause_cum, buy_cum, price, memo, start_offer, first_pay_at,
                        ref_block, flows, buys, first_touch, gaps, subs, n_causes, n_offers, maxg, n_oc,
                    )
                    if stage[i] != _UNAWARE:
                        active[b >> 6] |= low
                if count:
                    # the change to tomorrow's audience counts: out of today's cell, into
                    # tomorrow's (which an event may have moved)
                    cells[w, crow_of[r], col] -= 1
                    d2 = (day + 1 - np.int64(clock[i])) & CLOCK_MASK
                    if d2 > MAX_DWELL:
                        d2 = MAX_DWELL
                    cells[w, crow_of[row[i]], colf[(np.int64(sx[i]) << DWELL_BITS) + d2]] += 1


@njit(**SERIAL)
def _scan(b, e, uday, k_event, clock, sx, row, colf, thr):
    """Bit mask of the customers ``b .. e - 1`` that have an event on day ``uday``.

    Nothing is written here, and each bit is shifted in (not or-ed at an index), so the
    compiler keeps the loop scalar: vectorised with gathers it ran 2x slower on this
    kind of machine. Indices are unsigned, which spares numba's negative-index fix-up.
    """
    m = _ZERO
    for i in range(np.uint64(b), np.uint64(e)):
        raw = (uday - np.uint64(clock[i])) & _MASK16
        col = np.uint64(colf[(np.uint64(sx[i]) << _DWELL_BITS) + min(raw, _MAX_DWELL)])
        hit = (draw_at(k_event, i) >> _S32) < thr[np.uint64(row[i]), col]
        m = (m >> _ONE) | (np.uint64(hit) << _S63)
    return m


@njit(**SERIAL)
def _popcount(x):
    """Number of set bits of a uint64 (SWAR)."""
    x = x - ((x >> _ONE) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(**SERIAL)
def _scan_sparse(b, a, uday, k_event, clock, sx, row, colf, thr, moves):
    """:func:`_scan_moves` for only the customers ``b + j`` with bit ``j`` of ``a``
    set (no shift: bit j is customer b + j)."""
    m = _ZERO
    c = _ZERO
    while a != _ZERO:
        low = a & (_ZERO - a)
        a ^= low
        i = np.uint64(b) + np.uint64(_CTZ[(low * _DEBRUIJN) >> _S58])
        raw = (uday - np.uint64(clock[i])) & _MASK16
        base = np.uint64(sx[i]) << _DWELL_BITS
        col = np.uint64(colf[base + min(raw, _MAX_DWELL)])
        if (draw_at(k_event, i) >> _S32) < thr[np.uint64(row[i]), col]:
            m |= low
        if moves and np.uint64(colf[base + min((raw + _ONE) & _MASK16, _MAX_DWELL)]) != col:
            c |= low
    return m, c


@njit(**SERIAL)
def _scan_thinned(b, cand, wk, k_cand, uday, k_event, clock, sx, row, colf, thr):
    """The candidates ``b + j`` (bit ``j`` of ``cand``) that have an event: their
    unaware uniform below ``thr`` (see ``thin_k`` of :func:`advance_day`)."""
    m = _ZERO
    w0 = draw_at(k_cand, wk)
    w1 = draw_at(k_cand, wk + np.uint64(1))
    w2 = draw_at(k_cand, wk + np.uint64(2))
    w3 = draw_at(k_cand, wk + np.uint64(3))
    w4 = draw_at(k_cand, wk + np.uint64(4))
    w5 = draw_at(k_cand, wk + np.uint64(5))
    w6 = draw_at(k_cand, wk + np.uint64(6))
    w7 = draw_at(k_cand, wk + np.uint64(7))
    while cand != _ZERO:
        low = cand & (_ZERO - cand)
        cand ^= low
        j = np.uint64(_CTZ[(low * _DEBRUIJN) >> _S58])
        i = np.uint64(b) + j
        top = (
            (((w0 >> j) & _ONE) << np.uint64(7)) | (((w1 >> j) & _ONE) << np.uint64(6))
            | (((w2 >> j) & _ONE) << np.uint64(5)) | (((w3 >> j) & _ONE) << np.uint64(4))
            | (((w4 >> j) & _ONE) << _S3) | (((w5 >> j) & _ONE) << np.uint64(2))
            | (((w6 >> j) & _ONE) << _ONE) | ((w7 >> j) & _ONE)
        )
        u = (top << _S24) | (draw_at(k_event, i) >> _S40)
        raw = (uday - np.uint64(clock[i])) & _MASK16
        col = np.uint64(colf[(np.uint64(sx[i]) << _DWELL_BITS) + min(raw, _MAX_DWELL)])
        if u < thr[np.uint64(row[i]), col]:
            m |= low
    return m


@njit(**SERIAL)
def _scan_flat(b, e, k_event, sx, row, colf, thr):
    """:func:`_scan` where every slot has one column (its entry for any days)."""
    m = _ZERO
    for i in range(np.uint64(b), np.uint64(e)):
        col = np.uint64(colf[np.uint64(sx[i]) << _DWELL_BITS])
        hit = (draw_at(k_event, i) >> _S32) < thr[np.uint64(row[i]), col]
        m = (m >> _ONE) | (np.uint64(hit) << _S63)
    return m


@njit(**SERIAL)
def _scan_moves(b, e, uday, k_event, clock, sx, row, colf, thr):
    """:func:`_scan`, and the mask of the customers whose column changes tomorrow if
    nothing happens today (their audience cell moves)."""
    m = _ZERO
    c = _ZERO
    for i in range(np.uint64(b), np.uint64(e)):
        raw = (uday - np.uint64(clock[i])) & _MASK16
        base = np.uint64(sx[i]) << _DWELL_BITS
        col = np.uint64(colf[base + min(raw, _MAX_DWELL)])
        hit = (draw_at(k_event, i) >> _S32) < thr[np.uint64(row[i]), col]
        m = (m >> _ONE) | (np.uint64(hit) << _S63)
        moved = np.uint64(colf[base + min((raw + _ONE) & _MASK16, _MAX_DWELL)]) != col
        c = (c >> _ONE) | (np.uint64(moved) << _S63)
    return m, c


@njit(**SERIAL)
def _event(
    i, w, r, col, day, k_choice, stage, row, sx, orders, clock, last_order, acquired, converted, revenue,
    reached, reached_by, track, sx_of, crow_of, fb_of, cut_adv, cut_lapse, cut_unsub, cause_cum, buy_cum,
    price, memo, start_offer, first_pay_at, ref_block, flows, buys, first_touch, gaps, subs, n_causes, n_offers,
    maxg, n_oc,
):
    """Something happens to customer ``i`` today (in column ``col``): which outcome, and why."""
    s = stage[i]
    crow = crow_of[r]
    fb = fb_of[r]
    u = to_unit(draw_at(k_choice, i))
    pa = cut_adv[r, col]
    pl = cut_lapse[r, col]
    pu = cut_unsub[r, col]
    if u < pa:
        v = u / pa
        k = 0
        while k < n_causes - 1 and v >= cause_cum[crow, col, k]:
            k += 1
        flows[w, fb, s, k] += 1
        new = _AWARE if s == _LAPSED else s + 1
        stage[i] = new
        if memo[s]:
            clock[i] = day
        if s == _UNAWARE:
            acquired[i] = k
            if k == _REFERRAL and ref_block > 0:
                row[i] = r + ref_block  # a referred customer reads its own rows from now on
        elif s == _ENGAGED:
            buys[w, fb, _LEAD_MAGNET] += 1
            revenue[i] += price[_LEAD_MAGNET]
            row[i] = r | PERMISSION
        elif s == _SUBSCRIBED:
            converted[i] = k
            buys[w, fb, _ENTRY] += 1
            revenue[i] += price[_ENTRY]
            _order(i, day, orders, last_order, gaps, w, maxg, n_oc)
            a = acquired[i]
            first_touch[w, fb, a if a != NONE else n_causes] += 1
        elif s == _EXCITED:
            # a first-time subscriber may start with a free trial; any other
            # sign-up is a payment (of a subscription: its first)
            o = start_offer if orders[i] <= 1 else _CORE
            buys[w, fb, o] += 1
            revenue[i] += price[o]
            if o == _CORE and first_pay_at >= 0:
                a = acquired[i]
                subs[w, fb, a if a != NONE else n_causes] += 1
            _order(i, day, orders, last_order, gaps, w, maxg, n_oc)
        sx[i] = sx_of[new, orders[i]]
        if track and reached[i, new - 1] == NEVER:
            reached[i, new - 1] = day
            reached_by[i, new - 1] = k
    elif u < pl:
        flows[w, fb, s, n_causes] += 1
        if s >= _ASCENDED and s <= _PROMOTER and orders[i] == first_pay_at:
            subs[w, fb, n_causes + 1] += 1  # a trial that ends unpaid
        stage[i] = _LAPSED
        sx[i] = sx_of[_LAPSED, orders[i]]
        clock[i] = day
        if track:
            reached[i, reached.shape[1] - 1] = day
    elif u < pu:
        flows[w, fb, s, n_causes + 1] += 1
        row[i] = r & ~PERMISSION
    else:
        v = (u - pu) / (1.0 - pu)
        o = 0
        while o < n_offers - 1 and v >= buy_cum[col, o]:
            o += 1
        buys[w, fb, o] += 1
        revenue[i] += price[o]
        if memo[N_STAGES + o]:
            if o == _CORE and orders[i] == first_pay_at:  # a trial ends paid
                a = acquired[i]
                subs[w, fb, a if a != NONE else n_causes] += 1
                subs[w, fb, n_causes + 2] += 1
            clock[i] = day
            _order(i, day, orders, last_order, gaps, w, maxg, n_oc)
            sx[i] = sx_of[s, orders[i]]


@njit(**SERIAL)
def _order(i, day, orders, last_order, gaps, w, maxg, n_oc):
    """Count an order: the gap since the previous one (if any), then the new memory."""
    k = orders[i]
    if last_order[i] != NEVER:
        g = day - last_order[i]
        if g > maxg:
            g = maxg
        c = k if k < n_oc else n_oc - 1
        gaps[w, c, g] += 1
    if k < 255:
        orders[i] = k + 1
    last_order[i] = day
