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
EVENT, CHOICE, INIT_STAGE, INIT_LEVEL = 1, 2, 3, 4
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
    __slots__ = ("stage", "segment", "level", "acquired", "converted", "revenue", "reached")


def init(n, key, seg_end, stage_cum, track):
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
        c.acquired = c.converted = 255
        c.revenue = 0.0
        c.reached = [NEVER] * 9 if track else None
        if track and s == 9:
            c.reached[8] = 0
        elif track and s > 0:
            c.reached[s - 1] = 0
        people.append(c)
    return people


def day(people, key, d, thr, cut_adv, cut_lapse, cause_cum, buy_cum, price, n_causes):
    """One day. Returns (flows, buys, referred) as dicts keyed by tuples."""
    flows, buys, referred = {}, {}, {}

    def bump(table, k):
        table[k] = table.get(k, 0) + 1

    for i, c in enumerate(people):
        p = c.segment * 16 + c.level
        s = c.stage
        if thr[p][s] == 0 or (draw(key, i, d, EVENT) >> 32) >= thr[p][s]:
            continue
        u = unit(draw(key, i, d, CHOICE))
        if u < cut_adv[p][s]:
            v = u / cut_adv[p][s]
            k = 0
            while k < n_causes - 1 and v >= cause_cum[c.segment][s][k]:
                k += 1
            bump(flows, (c.segment, s, k))
            new = 1 if s == 9 else s + 1
            c.stage = new
            bought = {2: 0, 3: 1, 5: 2}.get(s)
            if s == 0:
                c.acquired = k
            if s == 3:
                c.converted = k
                if c.acquired == 1:
                    bump(referred, c.segment)
            if bought is not None:
                bump(buys, (c.segment, bought))
                c.revenue = float_add32(c.revenue, price[bought])
            if c.reached is not None and c.reached[new - 1] == NEVER:
                c.reached[new - 1] = d
        elif u < cut_lapse[p][s]:
            bump(flows, (c.segment, s, n_causes))
            c.stage = 9
            if c.reached is not None:
                c.reached[8] = d
        else:
            v = (u - cut_lapse[p][s]) / (1.0 - cut_lapse[p][s])
            o = 0
            while o < len(buy_cum) - 1 and v >= buy_cum[o]:
                o += 1
            bump(buys, (c.segment, o))
            c.revenue = float_add32(c.revenue, price[o])
    return flows, buys, referred


def float_add32(a, b):
    """a + b rounded to float32, as the kernel's float32 revenue column does."""
    import struct

    return struct.unpack("f", struct.pack("f", a + b))[0]
