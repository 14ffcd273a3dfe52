"""A Hessian by central differences, the independent reference of the standard-error tests
(written apart from emkit's analytic observed information)."""

import numpy as np


def hessian(f, x, relative_step=1e-4):
    """∇²f at x: central differences with steps relative_step · max(|x_i|, 0.1)."""
    n = len(x)
    h = relative_step * np.maximum(np.abs(x), 0.1)
    result = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            def at(si, sj, i=i, j=j):
                point = np.array(x, dtype=float)
                point[i] += si * h[i]
                point[j] += sj * h[j]
                return f(point)
            value = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h[i] * h[j])
            result[i, j] = result[j, i] = value
    return result
