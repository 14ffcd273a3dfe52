"""The classification and uncertainty of the chosen model against mclust's ``Mclust``.

mclust 6.0.0 (R 4.2.2 Patched), run to convergence so that both programs report the same
maximum (at mclust's default ``tol = 1e-5`` it stops 0.01 nats short and its uncertainties
differ from the maximum's in the second digit)::

    X <- read.csv("src/emkit/datasets/faithful.csv")   # all.equal(X, faithful): TRUE
    m <- Mclust(X, G = 1:4, modelNames = c("VVV", "EEE"),
                control = emControl(tol = c(1e-12, 1e-12), itmax = c(1e6, 1e6)))
    m$modelName; m$G; m$loglik                 # "EEE" 3 -1126.31592783
    table(m$classification)                    # 41 97 134
    sum(m$uncertainty); max(m$uncertainty); which.max(m$uncertainty)
    m$uncertainty[c(1, 3, 74, 100, 152)]; m$classification[1:12]
"""

from __future__ import annotations

import numpy as np
import pytest

from emkit import datasets, select_model

MCLUST = {
    "model": ("EEE", 3),
    "log_likelihood": -1126.31592783,
    "rows_per_component": [41, 97, 134],
    "sum_uncertainty": 18.4800376612,
    "max_uncertainty": 0.4858998795,
    "max_uncertainty_row": 74,  # 1-based, as R counts
    "uncertainty_at": {1: 0.02709885981, 3: 0.003039439418, 74: 0.4858998795,
                       100: 0.0004741063122, 152: 0.4837720228},
    "classification_1_to_12": [1, 2, 1, 2, 3, 2, 3, 1, 2, 3, 2, 1],
}


def test_select_model_gives_mclusts_classification_and_uncertainty():
    X = datasets.load("faithful").data
    # To the maximum, as mclust was run: at the default tol (1e-6 per row, the likelihood's
    # precision) the flat directions of the likelihood leave the uncertainties ~1e-4 off.
    result = select_model(X, range(1, 5), covariance_types=["VVV", "EEE"], random_state=0,
                          tol=1e-10)
    best = result.best
    assert (best["covariance_type"], best["n_components"]) == MCLUST["model"]
    assert best["log_likelihood"] == pytest.approx(MCLUST["log_likelihood"], abs=1e-4)
    assert sorted(np.bincount(result.classification).tolist()) == MCLUST["rows_per_component"]
    # The same partition of the first rows, whatever the components' numbering.
    first = result.classification[:12].tolist()
    pairs = set(zip(first, MCLUST["classification_1_to_12"], strict=True))
    assert len(pairs) == len(set(first)) == 3
    # mclust stops at a relative change of 1e-5 per iteration, short of the maximum: from three
    # starts (hierarchical, k-means, default) at tol=1e-12 emkit's sum is 18.48041 (±1e-6)
    # and its log-likelihood 1.6e-8 above mclust's.
    assert result.uncertainty.sum() == pytest.approx(MCLUST["sum_uncertainty"], rel=5e-5)
    assert int(np.argmax(result.uncertainty)) + 1 == MCLUST["max_uncertainty_row"]
    for row, value in MCLUST["uncertainty_at"].items():
        assert result.uncertainty[row - 1] == pytest.approx(value, abs=1e-4), row
