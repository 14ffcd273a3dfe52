"""mclust's 14 covariance models against mclust itself (R 4.2.2, mclust 6.0.0).

``data/mclust_models.json`` holds mclust's log-likelihoods of ``Mclust(X, G=K, modelNames=m)``
for Old Faithful and iris, every model, K = 1..6, and ``nMclustParams`` for several sizes
(made by ``data/mclust_models.R``; the JSON's ``source`` says how). emkit at its defaults must
reach at least mclust's log-likelihood in every case, count the parameters as mclust does, and
give mclust's BIC (with scikit-learn's sign) where the maximum is unique (K = 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from emkit import GaussianMixture, datasets, select_model
from emkit.cli import main
from emkit.families import parsimonious
from emkit.report import PENGUIN_MEASUREMENTS

REFERENCE = json.loads((Path(__file__).parent / "data" / "mclust_models.json").read_text())
FITS = REFERENCE["fits"]["values"]
# Nats below mclust's log-likelihood still counted as the same maximum: mclust stops at a
# relative change of 1e-5 per iteration, emkit nearer the maximum (tol 1e-6 per sample).
SAME_MAXIMUM = 1e-3

# Every cell at the defaults (one start, random_state=0). The default races mclust's own start
# (the same partitions, tests/reference/test_mclust_hierarchical.py) against k-means starts;
# where mclust's start loses the race the two race on to their maxima (faithful VVV K=6: the
# leader ends at −1100.78, mclust's start at −1094.76), and where it leads the fit starts from
# it (iris VVE K=5: from the race's plain EM steps SQUAREM ended at −191.34, below mclust's
# −190.84; from the start itself at −188.30). Before the start was mclust's (2026-12-04), eight
# cells needed more starts (n_init), and until that day's fifth session, iris VVE K=5.
# Over seeds 0-2 of the default start, 14 of the 495 (data, model, K, seed) cells end below
# mclust's maximum (28 nats in all), each at another local maximum (2026-12-03).


def data(name: str) -> np.ndarray:
    if name == "penguins":  # the four measurements, rows without NA
        penguins = datasets.load("penguins")
        X = np.column_stack([penguins.column(column) for column in PENGUIN_MEASUREMENTS])
        return X[~np.isnan(X).any(axis=1)]
    return load_iris().data if name == "iris" else datasets.load(name).data  # faithful, geyser


# iris VVV K=5 (scikit-learn's "full", unchanged by the models) has a component nearly singular
# at its start, where reg_covar's inexact M-step lowers the objective by 7e-7 relative once
# (docs/design.md, "Degenerate components"); the fit goes on to the maximum.
@pytest.mark.filterwarnings("ignore::emkit.errors.LikelihoodDecreaseWarning")
@pytest.mark.parametrize("model", parsimonious.MODELS)
@pytest.mark.parametrize("name", sorted(FITS))
def test_log_likelihood_at_least_mclusts(name, model):
    X = data(name)
    for K, reference in FITS[name][model].items():
        if reference is None:  # Mclust returned no fit (singular covariances)
            continue
        K = int(K)
        fit = GaussianMixture(K, covariance_type=model, random_state=0).fit(X)
        log_likelihood = fit.score(X) * len(X)
        assert log_likelihood >= reference["loglik"] - SAME_MAXIMUM, (name, model, K)
        assert fit.n_parameters() == reference["df"]


def test_parameter_counts_are_mclusts():
    for model, n_features, n_components, count in REFERENCE["nMclustParams"]["values"]:
        assert parsimonious.n_parameters(model, n_components, n_features) == count, model


@pytest.mark.parametrize("name", sorted(FITS))
def test_one_component_bic_is_mclusts_with_the_sign_turned(name):
    """With K = 1 the maximum is in closed form for every model, so the log-likelihoods agree
    to round-off and the BIC (−2 log L + p log n, lower is better) is −mclust's BIC."""
    X = data(name)
    for model in parsimonious.MODELS:
        fit = GaussianMixture(1, covariance_type=model).fit(X)
        reference = FITS[name][model]["1"]
        assert fit.score(X) * len(X) == pytest.approx(reference["loglik"], rel=1e-9, abs=1e-6)
        assert fit.bic(X) == pytest.approx(-reference["bic"], rel=1e-9)


def test_select_all_models_gives_mclustBIC_table():
    """``select_model(..., covariance_types="all")`` fits the 14 models; at K = 1 its BIC is
    mclustBIC's with the sign turned, at K = 2 at least as good (lower) as mclust's, and the
    grid in mclust's sign shows mclust's numbers."""
    X = data("faithful")
    reference = REFERENCE["mclustBIC"]["values"]["faithful"]
    result = select_model(X, [1, 2], "all", random_state=0)
    assert [row["covariance_type"] for row in result.table] == [
        model for model in parsimonious.MODELS for _ in (1, 2)]
    for row in result.table:
        mclust = reference[row["covariance_type"]][row["n_components"] - 1]
        if row["n_components"] == 1:
            assert row["bic"] == pytest.approx(-mclust, rel=1e-9)
        else:
            assert row["bic"] <= -mclust + 2 * SAME_MAXIMUM
    grid = result.to_grid(mclust_sign=True)
    assert f"{reference['EEE'][0]:.2f}" in grid and f"{reference['VVV'][0]:.2f}" in grid
    assert grid.splitlines()[1].split() == ["K", *parsimonious.MODELS]


def test_select_command_prints_the_grid_in_mclusts_sign(capsys):
    status = main(["select", "gmm", str(datasets.path("faithful")), "-k", "1", "--models",
                   "all", "--mclust-sign"])
    out = capsys.readouterr().out
    assert status == 0
    assert "BIC (mclust's sign: higher is better)" in out
    reference = REFERENCE["mclustBIC"]["values"]["faithful"]
    best = max(parsimonious.MODELS, key=lambda model: reference[model][0])
    row = next(line for line in out.splitlines() if line.startswith("1 "))
    assert row.split()[1:] == [f"{reference[m][0]:.2f}" + ("*" if m == best else "")
                               for m in parsimonious.MODELS]


@pytest.mark.parametrize("name", sorted(REFERENCE["mclustBIC"]["values"]))
def test_the_grid_at_its_defaults_reaches_mclusts_maximum_in_every_cell(name):
    """The issue's goal, on the whole 14 × 9 grid as ``mclustBIC(X, G=1:9)`` fits it: every
    cell's BIC at least as good as mclust's (the grid converges mclust's own start in every
    cell, with the race's leader and its neighbours' starts), and the chosen model mclust's
    or one of better BIC."""
    X = data(name)
    reference = REFERENCE["mclustBIC"]["values"][name]
    result = select_model(X, range(1, 10), "all", random_state=0)
    cells = 0
    for row in result.table:
        mclust = reference[row["covariance_type"]][row["n_components"] - 1]
        if mclust is None:  # mclust has no fit there (singular covariances)
            continue
        cells += 1
        assert row["bic"] <= -mclust + 2 * SAME_MAXIMUM, (row["covariance_type"],
                                                          row["n_components"])
    assert cells >= 120
    best_mclust = max(value for values in reference.values() for value in values
                      if value is not None)
    assert result.best["bic"] <= -best_mclust + 2 * SAME_MAXIMUM
