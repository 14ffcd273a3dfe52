"""Fast math shared by the compiled kernels, written once.

``exp_nonpositive`` is plain arithmetic (no call into libm), so that loops over rows or states
that use it vectorise (SIMD). Numba inlines it into each caller.
"""

from __future__ import annotations

import numba
import numpy as np

# Fused multiply-adds only: reassociation would break the Cody–Waite reduction below.
_SERIAL = dict(nogil=True, cache=True, fastmath={"contract"})

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody & Waite): n·_LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
# 2^-m for m = 0 … 1074 (down to the smallest subnormal), then 0 for anything smaller.
_POW2 = np.concatenate([np.ldexp(1.0, -np.arange(1075)), [0.0]])


@numba.njit(inline="always", **_SERIAL)
def exp_nonpositive(s):
    """exp(s) for s ≤ 0 (−inf included: 0), within 2 ulp of the correctly rounded value down to
    the normal range, branch-free.

    s = n·ln 2 + r with n = round(s / ln 2) and |r| ≤ ln 2 / 2; e^r by its Taylor polynomial to
    degree 12 (truncation error < 2·10⁻¹⁷), times 2^n from a table covering the whole float64
    range (subnormal results included; below it, 0).
    """
    s = max(s, -800.0)
    n = np.floor(s * _LOG2E + 0.5)
    r = (s - n * _LN2_HI) - n * _LN2_LO
    p = 2.08767569878681e-09  # 1/12!, then 1/11!, …, 1/0! (Horner)
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _POW2[min(np.int64(-n), 1075)]
