"""Slow, obviously-correct twins of the kernels, in plain Python (no numpy in the loops,
no numba, nothing imported from ``kernels``). They draw the same counter-based random
numbers, computed here with Python integers, so on the same inputs they must give
exactly the same state as the kernels."""

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
C_SEED = 0x632BE59BD9B4E019
C_DAY = 0xD1B54A32D192ED03
EVENT, CHOICE, INIT_STAGE, INIT_LEVEL, INIT_BAND, INIT_PHASE, CANDIDATE = 1, 2, 3, 4, 5, 12, 13
THIN_MAX = 8
NEVER = 0xFFFF


def mix64(z):
    z = ((z ^ (z >> 30)) * M1) & MASK
    z = ((z ^ (z >> 27)) * M2) & MASK
    return z ^ (z >> 31)


def stream_key(seed, replication):
    return mix64(mix64((seed * GOLDEN + C_SEED) & MASK) ^ ((replication * M2) & MASK))


def draw(key, customer, day, purpose):
    day_key = key ^ mix64(((((day << 16) | purpose) * GOLDEN) + C_DAY) & MASK)
    return mix64((day_key + customer * GOLDEN) & MASK)


def unit(bits):
    return (bits >> 11) / 2.0**53


class Customer:
    __slots__ = (
        "acquired",
        "band",
        "clock",
        "converted",
        "last_order",
        "level",
        "orders",
        "permission",
        "reached",
        "reached_by",
        "revenue",
        "segment",
        "stage",
    )


def init(n, key, seg_end, stage_cum, track, band_cum=None, permitted=None, start_orders=None, phase=None):
    """Starting customers. ``band_cum[g]``: cumulative age-band shares of segment g;
    ``permitted[s]``: 1 where starting in stage s gives email permission; ``phase[s]``
    > 0: the clock of a customer starting in stage s is set back by a uniform whole
    number of days below it (modulo 2**16, like the kernel's uint16)."""
    people = []
    for i in range(n):
        c = Customer()
        c.segment = next(g for g, end in enumerate(seg_end) if i < end)
        u = unit(draw(key, i, 0, INIT_STAGE))
        s = 0
        while s < len(stage_cum) - 1 and u >= stage_cum[s]:
            s += 1
        c.stage = s
        c.level = draw(key, i, 0, INIT_LEVEL) >> 60
        c.band = 0
        cum = band_cum[c.segment] if band_cum is not None else [1.0]
        if len(cum) > 1:
            ub = unit(draw(key, i, 0, INIT_BAND))
            while c.band < len(cum) - 1 and ub >= cum[c.band]:
                c.band += 1
        c.permission = int(permitted[s]) if permitted is not None else int(3 <= s <= 8)
        c.orders = int(start_orders[s]) if start_orders is not None else 0
        c.clock = 0
        if phase is not None and phase[s] > 0:
            back = int(unit(draw(key, i, 0, INIT_PHASE)) * phase[s])
            c.clock = (-back) % 65536
        c.last_order = NEVER
        c.acquired = c.converted = 255
        c.revenue = 0.0
        c.reached = [NEVER] * 9 if track else None
        c.reached_by = [255] * 8 if track else None
        if track and s == 9:
            c.reached[8] = 0
        elif track and s > 0:
            c.reached[s - 1] = 0
        people.append(c)
    return people


def row_of(c, width, ref_block=0):
    """The customer's row of the day tables: (segment, level, band, permission), in the
    block of referred customers' rows when it was acquired by referral."""
    row = (c.segment * 16 + c.level) * width + c.band * 2 + c.permission
    return row + ref_block if ref_block and c.acquired == 1 else row


def column(c, d, col_of, sx_of):
    """The customer's table column on day d: the bucket of days since its last activity
    (capped at the table's last day) in its (stage, order class) slot."""
    slot = sx_of[c.stage][c.orders]
    return col_of[slot][min((d - c.clock) % 65536, len(col_of[slot]) - 1)]


def thinned(col_of, sx_of, start_orders, phase):
    """Whether the unaware draw their own uniform (see :func:`day`): their slot has one
    column for all days and their clocks all start at 0."""
    slot = col_of[sx_of[0][start_orders[0]]]
    return phase[0] == 0 and all(c == slot[0] for c in slot)


def unaware_uniform(key, i, d):
    """An unaware customer's 32-bit uniform: its top 8 bits are bit i % 64 of the 8
    CANDIDATE draws of its block of 64 customers (the first draw gives the top bit),
    its low 24 bits the top 24 of its EVENT draw."""
    block = i // 64
    top = 0
    for t in range(THIN_MAX):
        top = 2 * top + (draw(key, block * 8 + t, d, CANDIDATE) >> (i % 64) & 1)
    return top << 24 | draw(key, i, d, EVENT) >> 40


def day(people, key, d, width, col_of, sx_of, thr, cut_adv, cut_lapse, cut_unsub, cause_cum, buy_cum, price,
        n_causes, n_bands, order_classes, max_gap, memo=None, start_offer=2, first_pay_at=-1, ref_block=0,
        thin=False):
    """One day. Returns (flows, buys, first_touch, unsubscribes, gaps, subs) as dicts
    keyed by tuples; flows, buys, first_touch and subs are keyed by segment * n_bands +
    band first (first_touch: conversions by the cause that acquired the customer,
    ``n_causes`` for customers who started past unaware).

    A subscription (``first_pay_at`` >= 0): ``memo[s]`` says whether a move from stage
    s restarts the clock, ``memo[10 + o]`` whether a repeat purchase of offer o
    restarts it and counts as an order; a first-time buyer signs up with
    ``start_offer`` (a free trial), anyone else pays the core offer; ``subs`` counts
    first payments by acquiring cause, then trials ended unpaid and paid.

    ``ref_block`` > 0: a customer acquired by referral reads the rows from ``ref_block``
    on (its own chances), see :func:`row_of`.

    ``thin``: an unaware customer has an event when its :func:`unaware_uniform` is
    below its threshold (everyone else: the top 32 bits of its EVENT draw)."""
    flows, buys, first_touch, unsubs, gaps, subs = {}, {}, {}, {}, {}, {}
    memo = memo or [1] * 30

    def bump(table, k):
        table[k] = table.get(k, 0) + 1

    def order(c):
        if c.last_order != NEVER:
            bump(gaps, (min(c.orders, order_classes - 1), min(d - c.last_order, max_gap)))
        c.orders = min(c.orders + 1, 255)
        c.last_order = d

    for i, c in enumerate(people):
        s = c.stage
        col = column(c, d, col_of, sx_of)
        cell = c.band * 2 + c.permission
        row = row_of(c, width, ref_block)
        crow = c.segment * width + cell
        fb = c.segment * n_bands + c.band
        t = thr[row][col]
        if t == 0 or (unaware_uniform(key, i, d) if s == 0 and thin else draw(key, i, d, EVENT) >> 32) >= t:
            continue
        u = unit(draw(key, i, d, CHOICE))
        if u < cut_adv[row][col]:
            v = u / cut_adv[row][col]
            k = 0
            while k < n_causes - 1 and v >= cause_cum[crow][col][k]:
                k += 1
            bump(flows, (fb, s, k))
            new = 1 if s == 9 else s + 1
            c.stage = new
            if memo[s]:
                c.clock = d
            bought = {2: 0, 3: 1, 5: 2}.get(s)
            cause = n_causes if c.acquired == 255 else c.acquired
            if s == 5:
                bought = start_offer if c.orders <= 1 else 2
                if bought == 2 and first_pay_at >= 0:
                    bump(subs, (fb, cause))
            if s == 0:
                c.acquired = k
            if s == 2:
                c.permission = 1
            if s == 3:
                c.converted = k
                bump(first_touch, (fb, n_causes if c.acquired == 255 else c.acquired))
            if bought is not None:
                bump(buys, (fb, bought))
                c.revenue = float_add32(c.revenue, price[bought])
                if bought != 0:  # the lead magnet is not an order
                    order(c)
            if c.reached is not None and c.reached[new - 1] == NEVER:
                c.reached[new - 1] = d
                c.reached_by[new - 1] = k
        elif u < cut_lapse[row][col]:
            bump(flows, (fb, s, n_causes))
            if 6 <= s <= 8 and c.orders == first_pay_at:
                bump(subs, (fb, n_causes + 1))
            c.stage = 9
            c.clock = d
            if c.reached is not None:
                c.reached[8] = d
        elif u < cut_unsub[row][col]:
            bump(unsubs, (fb, s))
            c.permission = 0
        else:
            pu = cut_unsub[row][col]
            v = (u - pu) / (1.0 - pu)
            o = 0
            while o < len(buy_cum[col]) - 1 and v >= buy_cum[col][o]:
                o += 1
            bump(buys, (fb, o))
            c.revenue = float_add32(c.revenue, price[o])
            if memo[10 + o]:
                if o == 2 and c.orders == first_pay_at:
                    bump(subs, (fb, n_causes if c.acquired == 255 else c.acquired))
                    bump(subs, (fb, n_causes + 2))
                c.clock = d
                order(c)
    return flows, buys, first_touch, unsubs, gaps, subs


def float_add32(a, b):
    """a + b rounded to float32, as the kernel's float32 revenue column does."""
    import struct

    return struct.unpack("f", struct.pack("f", a + b))[0]
