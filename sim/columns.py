"""Arrow columns that name things: the one helper every table builder shares (the run's
tables in :mod:`cvj.results`, the referrals table in :mod:`cvj.network`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def names_column(indices, names) -> pa.DictionaryArray:
    """A dictionary-encoded column of ``names[indices]``: names, not codes, in every
    column a person reads."""
    names = list(names)
    idx_type = pa.int8() if len(names) < 128 else pa.int16()
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices), type=idx_type), pa.array(names, pa.string()))
