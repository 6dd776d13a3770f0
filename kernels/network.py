"""Word of mouth on a social graph that costs no memory per edge.

Only ``@njit`` functions over arrays live here. The graph is implicit: customer ``i``'s
``k``-th contact (``0 <= k < deg``) is :func:`contact`, a pure function of the run's
stream key, ``i`` and ``k``, computed when a referral needs it and never stored.

How contact ``k`` of customer ``i`` (segment ``g``, age band ``b``) is chosen, from one
counter-based draw and the SplitMix64 sequence that follows it:

1. the contact's segment ``t``: cumulative row ``seg_cum[g]`` (own segment with
   probability ``h + (1 - h) * share[g]``, another in proportion to its share,
   ``h`` the segment homophily);
2. if ``t == g``, with probability ``clustering`` the contact is a *ring neighbour*:
   customers of a segment sit on a ring in id order and contact ``k`` is the
   neighbour ``k // 2 + 1`` places on (``k`` even) or back (``k`` odd), as in a
   Watts-Strogatz ring lattice (friends of friends are friends);
3. otherwise a uniformly random member of segment ``t`` (a rewired edge); with
   probability ``age_h`` the person wants someone of their own age band and the
   draw is repeated (up to ``BAND_TRIES`` times) until the band matches.

A day of referrals runs in two steps around the day kernel:

- :func:`refer` (parallel, before the day; nothing writes state while it runs): each
  customer in a referring stage tells one of its contacts with the stage's daily
  chance; a telling that reaches an ``unaware`` or ``lapsed`` contact is written to
  the chunk's own row of the buffers as (target, source);
- :func:`apply_referrals` (serial, after the day): the buffers are applied chunk by
  chunk, in order, so the outcome does not depend on the number of threads. A
  target still ``unaware`` or ``lapsed`` (no move of its own that day) becomes
  ``aware`` with cause ``referral`` exactly as the day kernel moves a customer.
"""

import numpy as np
from numba import prange

from .jit import PARALLEL, SERIAL, njit
from .journey import _CTZ, _DEBRUIJN, _S58, CHUNK, DWELL_BITS, MAX_DWELL, N_LEVELS, NEVER
from .rng import GOLDEN, day_key, draw_at, mix64, to_unit

#: purposes of the network's draws (kernels/rng.py lists the day kernel's; these differ)
CONTACT = 20  # the graph: one draw per (customer, k), day 0
REFER = 21  # does a customer tell a contact today?
PICK = 22  # which of its contacts
BAND_TRIES = 256

_UNAWARE, _AWARE, _LAPSED = 0, 1, 9
_REFERRAL = 1
_S32 = np.uint64(32)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_S11 = np.uint64(11)


@njit(**SERIAL)
def _uniform_index(x, n):
    """An index in [0, n) from 64 random bits."""
    j = np.int64(np.float64(x >> _S11) * (1.0 / 9007199254740992.0) * n)
    return j if j < n else n - 1


@njit(**SERIAL)
def contact(gkey, i, k, deg, row, width, seg_lo, seg_n, seg_cum, clustering, age_h):
    """Customer ``i``'s contact number ``k`` (see the module docstring); ``i`` itself
    when the draw lands on it (a person does not refer themself)."""
    r = row[i]
    per_seg = N_LEVELS * width
    G = seg_cum.shape[1]
    # modulo G: a referred customer's row lies in the block after everyone's (the day
    # kernel's ``ref_block``); its segment, like its contacts, does not change
    g = (np.int64(r) // per_seg) % G
    x = draw_at(gkey, np.uint64(i) * np.uint64(deg) + np.uint64(k))
    u = to_unit(x)
    t = 0
    while t < G - 1 and u >= seg_cum[g, t]:
        t += 1
    lo = seg_lo[t]
    n = seg_n[t]
    x = mix64(x + GOLDEN)
    if t == g and to_unit(x) < clustering:
        o = k // 2 + 1
        pos = i - lo
        if k % 2 == 0:
            pos = (pos + o) % n
        else:
            pos = (pos - o % n + n) % n
        return lo + pos
    x = mix64(x + GOLDEN)
    want = to_unit(x) < age_h
    x = mix64(x + GOLDEN)
    j = lo + _uniform_index(x, n)
    if want:
        band = (np.int64(r) % width) >> 1
        tries = 1
        while tries < BAND_TRIES and (np.int64(row[j]) % width) >> 1 != band:
            x = mix64(x + GOLDEN)
            j = lo + _uniform_index(x, n)
            tries += 1
    return j


@njit(**SERIAL)
def contacts_of(key, customers, deg, row, width, seg_lo, seg_n, seg_cum, clustering, age_h):
    """int64[len(customers), deg]: every contact of the given customers (tests, the
    Mesa reference's graph and the measured degree distribution use it)."""
    gkey = day_key(key, 0, CONTACT)
    out = np.empty((customers.shape[0], deg), np.int64)
    for a in range(customers.shape[0]):
        for k in range(deg):
            out[a, k] = contact(gkey, customers[a], k, deg, row, width, seg_lo, seg_n, seg_cum, clustering, age_h)
    return out


@njit(**PARALLEL)
def refer(
    stage, row, key, day, chance, deg, width, seg_lo, seg_n, seg_cum, clustering, age_h, target, source, found,
    active,
):
    """Referral events of day ``day`` from the state at the start of the day.

    Parameters
    ----------
    chance : uint64[10]
        Daily chance of telling one contact, by stage, * 2**32 (0: the stage does not refer).
    target, source : int64[chunks, cap]
        (out) the chunk's events in customer order: who is told, by whom.
    found : int64[chunks]
        (out) events of each chunk; more than ``cap`` means the buffers were too small
        (the caller enlarges them and runs the day again: the events are a pure
        function of the state and the key).
    active : uint64[ceil(n / 64)]
        The day kernel's bitmap (every customer past ``unaware`` has its bit); where
        the unaware do not refer, only the customers with a bit are looked at.
    """
    n = stage.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    cap = target.shape[1]
    gkey = day_key(key, 0, CONTACT)
    k_refer = day_key(key, day, REFER)
    k_pick = day_key(key, day, PICK)
    for ci in prange(chunks):
        m = 0
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        if deg > 0:
            for wd in range(lo >> 6, ((hi - 1) >> 6) + 1):
                a = active[wd] if chance[_UNAWARE] == 0 else _ALL
                while a != _ZERO:  # the customers with a bit, in order
                    low = a & (_ZERO - a)
                    a ^= low
                    i = (wd << 6) + _CTZ[(low * _DEBRUIJN) >> _S58]
                    if i >= hi:
                        break
                    if chance[stage[i]] == 0:  # most customers do not refer: no call
                        continue
                    m = _tell(i, stage, row, chance, k_refer, k_pick, gkey, deg, width, seg_lo, seg_n, seg_cum,
                              clustering, age_h, target, source, ci, cap, m)
        found[ci] = m


@njit(**SERIAL)
def _tell(i, stage, row, chance, k_refer, k_pick, gkey, deg, width, seg_lo, seg_n, seg_cum, clustering, age_h,
          target, source, ci, cap, m):
    """Customer ``i``'s referral of the day, if any, appended to chunk ``ci``'s buffers
    at ``m``; returns the chunk's new count. The caller skips the stages that do not
    refer (``chance`` 0)."""
    if (draw_at(k_refer, i) >> _S32) < chance[stage[i]]:
        k = _uniform_index(draw_at(k_pick, i), deg)
        j = contact(gkey, i, k, deg, row, width, seg_lo, seg_n, seg_cum, clustering, age_h)
        if j != i and (stage[j] == _UNAWARE or stage[j] == _LAPSED):
            if m < cap:
                target[ci, m] = j
                source[ci, m] = i
            m += 1
    return m


@njit(**SERIAL)
def apply_referrals(
    target, source, found, day, stage, row, sx, orders, clock, acquired, reached, reached_by, track,
    sx_of, colf, crow_of, fb_of, flows, cells, log_target, log_source, log_orders, ref_block, active,
):
    """Apply the day's referral events in chunk order; return how many took effect.

    A target still ``unaware`` or ``lapsed`` moves to ``aware`` as the day kernel moves
    a customer (clock, slot, ``acquired`` for an unaware one, the touch path), the move
    is counted in ``flows`` (``[segments * bands, 10, causes + 2]``, the day's summed
    flows) under cause ``referral``, ``cells`` (the counts of tomorrow's audiences, when
    it has rows) follow the customer, and (target, source, orders before) go to the log.
    """
    count = cells.shape[0] > 0
    applied = 0
    for ci in range(found.shape[0]):
        for e in range(min(found[ci], target.shape[1])):
            j = target[ci, e]
            s = stage[j]
            if s != _UNAWARE and s != _LAPSED:
                continue
            r = row[j]
            if count:
                d2 = (day + 1 - np.int64(clock[j])) & 0xFFFF  # clocks run modulo 2**16 (the day kernel)
                if d2 > MAX_DWELL:
                    d2 = MAX_DWELL
                cells[crow_of[r], colf[(np.int64(sx[j]) << DWELL_BITS) + d2]] -= 1
            flows[fb_of[r], s, _REFERRAL] += 1
            stage[j] = _AWARE
            clock[j] = day
            if s == _UNAWARE:
                active[j >> 6] |= _ONE << np.uint64(j & 63)
                acquired[j] = _REFERRAL
                if ref_block > 0:
                    row[j] = r + ref_block  # the referred customer's own rows (the day kernel's ref_block)
            sx[j] = sx_of[_AWARE, orders[j]]
            if track and reached[j, 0] == NEVER:
                reached[j, 0] = day
                reached_by[j, 0] = _REFERRAL
            if count:
                cells[crow_of[r], colf[(np.int64(sx[j]) << DWELL_BITS) + 1]] += 1
            log_target[applied] = j
            log_source[applied] = source[ci, e]
            log_orders[applied] = orders[j]
            applied += 1
    return applied


@njit(**SERIAL)
def generations(tid, sid, src_referred, src):
    """Per referral, in the order applied: its generation and the root of its chain.

    ``tid[e]``: the referred person's index among everyone referred; ``sid[e]``: the
    referrer's index there when ``src_referred[e]`` (else the referrer was never
    referred) and ``src[e]`` the referrer's customer id. A referrer referred before has
    the generation and root of its latest referral; otherwise it is the root itself
    (generation 0), and its friend is generation 1."""
    n = tid.shape[0]
    people = 0
    for e in range(n):
        if tid[e] + 1 > people:
            people = tid[e] + 1
    gen_of = np.zeros(people, np.int64)
    root_of = np.zeros(people, np.int64)
    gen = np.empty(n, np.int64)
    root = np.empty(n, np.int64)
    for e in range(n):
        g = 0
        rt = src[e]
        if src_referred[e] and gen_of[sid[e]] > 0:
            g = gen_of[sid[e]]
            rt = root_of[sid[e]]
        gen[e] = g + 1
        root[e] = rt
        gen_of[tid[e]] = g + 1
        root_of[tid[e]] = rt
    return gen, root
