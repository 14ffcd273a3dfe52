"""The hierarchical start is mclust's: ``hierarchical(X, K)`` gives the partitions of mclust's
``hclass(hc(X, modelName="VVV", use="SVD"), K)``, the starts of ``mclustBIC``, for K = 2..9.

``data/mclust_hclass.json`` holds mclust's partitions (mclust 6.0.0, R 4.2.2; made by
``data/mclust_hclass.R``) of Old Faithful, iris and the penguins' four measurements. Old Faithful
has duplicated rows, whose merges cost exactly the same: the partitions are mclust's only with
its order of merging among equal costs as well as its criterion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from emkit.kernels import tiers
from emkit.models import clustering
from emkit.models.clustering import hierarchical

from .test_mclust_models import data

REFERENCE = json.loads((Path(__file__).parent / "data" / "mclust_hclass.json").read_text())


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(a * (b.max() + 1) + b)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("form", ["numpy", "compiled"])
@pytest.mark.parametrize("name", sorted(REFERENCE["partitions"]))
def test_partitions_are_mclusts(name, form, monkeypatch):
    monkeypatch.setattr(tiers, "MODE", form)
    monkeypatch.setattr(clustering, "_HIERARCHIES", {})  # built by this form
    X = data(name)
    for K, expected in REFERENCE["partitions"][name].items():
        labels = hierarchical(X, int(K))
        assert labels.max() == int(K) - 1
        assert same_partition(labels, np.array(expected)), (name, K)


def test_weights_count_as_repeated_rows(monkeypatch):
    # A row of weight 2 is the row twice (mclust merges such a pair first, at −2 log 2).
    monkeypatch.setattr(tiers, "MODE", "numpy")
    monkeypatch.setattr(clustering, "_HIERARCHIES", {})
    X = load_iris().data[::3]
    weights = np.ones(len(X))
    weights[[4, 20, 33]] = 2.0
    repeated = np.repeat(X, weights.astype(int), axis=0)
    first_copy = np.cumsum(weights.astype(int)) - weights.astype(int)
    for K in (2, 3, 5):
        assert same_partition(hierarchical(X, K, weights),
                              hierarchical(repeated, K)[first_copy]), K


def test_partitions_of_the_same_rows_are_cuts_of_one_hierarchy(monkeypatch):
    # Built once per data set: a grid over K agglomerates its rows once.
    monkeypatch.setattr(clustering, "_HIERARCHIES", {})
    X = data("iris")
    labels = {K: hierarchical(X, K) for K in (2, 5, 9)}
    assert len(clustering._HIERARCHIES) == 1
    for K in (2, 5):  # nested: each cluster of K + … lies within one cluster of K
        finer = labels[9 if K == 5 else 5]
        assert all(len(np.unique(labels[K][finer == c])) == 1 for c in np.unique(finer))
    hierarchical(X[:-1], 3)  # other rows: another hierarchy
    assert len(clustering._HIERARCHIES) == 2
