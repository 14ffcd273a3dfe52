"""Fast math shared by the compiled kernels, written once.

``exp_nonpositive`` is plain arithmetic (no call into libm, no table look-up), so that loops over
rows or states that use it vectorise (SIMD). Numba inlines it into each caller.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

# Fused multiply-adds only: reassociation would break the Cody–Waite reduction below.
_SERIAL = dict(nogil=True, cache=True, fastmath={"contract"})

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody & Waite): n·_LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
# n + 1.5·2^52 has the integer n in its low mantissa bits (|n| < 2^51): its bits minus this
# constant's are n, without a float-to-integer conversion (which AVX2 does not vectorise).
_MAGIC = 6755399441055744.0
_MAGIC_BITS = int(np.array(_MAGIC).view(np.int64))


@intrinsic
def _bits_as_float(typingctx, bits):
    """The float64 whose bits are the int64 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@intrinsic
def _float_bits(typingctx, value):
    """The bits of the float64 ``value`` as an int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@numba.njit(inline="always", **_SERIAL)
def exp_nonpositive(s):
    """exp(s) for s ≤ 0 (−inf included: 0), within 2 ulp of the correctly rounded value down to
    the normal range, branch-free.

    s = n·ln 2 + r with n = round(s / ln 2) and |r| ≤ ln 2 / 2; e^r by its Taylor polynomial to
    degree 12 (truncation error < 2·10⁻¹⁷), times 2^n built in the exponent bits as two normal
    factors 2^⌊n/2⌋ · 2^⌈n/2⌉: the first product is exact and the second rounds once, so
    subnormal results are rounded once too; below the smallest subnormal (n < −1074), 0.
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
    m = _float_bits(n + _MAGIC) - _MAGIC_BITS
    half = m >> 1
    scaled = p * _bits_as_float((half + 1023) << 52) * _bits_as_float((m - half + 1023) << 52)
    return 0.0 if n < -1074.0 else scaled  # (NaN: the comparison is false, NaN comes out)
