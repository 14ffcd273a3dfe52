"""Fitting on Dask arrays: on a local cluster of two worker processes the fit equals the one in
memory, survives a worker killed half-way, and predictions on Dask arrays stay lazy."""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

from emkit import GaussianMixture  # noqa: E402

START = dict(weights_init=[0.5, 0.5], means_init=[[0.5, 0.0, 0.0], [2.0, 1.0, -1.0]],
             precisions_init=[np.eye(3), np.eye(3)])  # a start that does not depend on row order


def rows(n_rows=6000, seed=0, missing=0.0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (n_rows // 2, 3)),
                   rng.normal([3.0, 1.0, -2.0], 0.6, (n_rows - n_rows // 2, 3))])
    X = rng.permutation(X)
    X[rng.uniform(size=X.shape) < missing] = np.nan
    return X


def fit(X, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(2, tol=0.0, max_iter=12, **START, **options).fit(X)


def assert_same_fit(got, want):
    np.testing.assert_allclose(got.history_, want.history_, rtol=1e-10)
    np.testing.assert_allclose(got.means_, want.means_, rtol=1e-10)
    np.testing.assert_allclose(got.covariances_, want.covariances_, rtol=1e-10)


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        with distributed.Client(cluster) as client:
            yield client
        cluster.close()


def test_a_fit_on_the_cluster_equals_the_fit_in_memory(client):
    X = rows(missing=0.1)
    assert_same_fit(fit(da.from_array(X, chunks=(700, 3))), fit(X))


def test_a_worker_killed_during_the_fit_changes_nothing(client):
    X = rows(seed=1)
    victim = next(iter(client.run(os.getpid).values()))  # one worker's process id
    killed = []

    class KillOnce:
        """SIGKILLs a worker process at the fourth iteration: its blocks and tasks are lost
        and recomputed by Dask, its nanny starts a new one."""

        def __call__(self, info):
            if info.iteration == 4 and not killed:
                os.kill(victim, signal.SIGKILL)
                killed.append(info.iteration)

    from emkit import fit_em
    from emkit.data.distributed import DaskChunks
    from emkit.models.mixture import GaussianMixtureModel

    model = GaussianMixtureModel(2, "full")
    start = model.init_params(X, np.random.default_rng(0))
    options = dict(init=start, tol=0.0, max_iter=12, accelerate=None, warn_not_converged=False)
    on_cluster = fit_em(model, DaskChunks(da.from_array(X, chunks=(500, 3))),
                        callbacks=[KillOnce()], **options)
    assert killed == [4]
    in_memory = fit_em(model, X, **options)
    np.testing.assert_allclose(on_cluster.history, in_memory.history, rtol=1e-10)
    np.testing.assert_allclose(on_cluster.params.components.means,
                               in_memory.params.components.means, rtol=1e-10)


def test_predictions_on_dask_arrays_are_lazy_and_equal(client):
    X = rows(seed=2, missing=0.05)
    model = fit(X)
    lazy = da.from_array(X, chunks=(1000, 3))
    for method in ("predict", "predict_proba", "score_samples"):
        result = getattr(model, method)(lazy)
        assert isinstance(result, da.Array)
        np.testing.assert_allclose(result.compute(), getattr(model, method)(X), rtol=1e-12)


def test_the_threaded_scheduler_works_without_a_cluster():
    X = rows(seed=3)
    assert_same_fit(fit(da.from_array(X, chunks=(1000, 3)), accelerate="squarem"),
                    fit(X, accelerate="squarem"))


def test_an_hmm_fits_on_a_dask_array_in_blocks_of_whole_sequences(client):
    from emkit import GaussianHMM
    from emkit.data.distributed import DaskSequences

    rng = np.random.default_rng(4)
    lengths = rng.integers(50, 400, size=60)
    states = (np.cumsum(rng.uniform(size=lengths.sum()) < 0.05) % 2).astype(int)
    X = np.array([[0.0, 0.0], [3.0, 1.0]])[states] + rng.normal(size=(lengths.sum(), 2))

    def model():
        hmm = GaussianHMM(2, covariance_type="diag", init_params="", tol=0.0, max_iter=8)
        hmm.startprob_, hmm.transmat_ = np.array([0.5, 0.5]), np.array([[0.8, 0.2],
                                                                          [0.3, 0.7]])
        hmm.means_, hmm.covars_ = np.array([[0.5, 0.0], [2.0, 1.0]]), np.ones((2, 2))
        return hmm

    lazy = da.from_array(X, chunks=(1000, 2))  # chunks that cut through sequences
    sequences = DaskSequences(lazy, lengths, frames_per_block=2000)
    blocks = [block.compute() for block in sequences.blocks]
    assert len(blocks) > 3 and sum(len(b.lengths) for b in blocks) == len(lengths)
    assert np.concatenate([b.lengths for b in blocks]).tolist() == lengths.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_cluster, in_memory = model().fit(lazy, lengths), model().fit(X, lengths)
    np.testing.assert_allclose(on_cluster.history_, in_memory.history_, rtol=1e-10)
    np.testing.assert_allclose(on_cluster.means_, in_memory.means_, rtol=1e-10)
    np.testing.assert_allclose(on_cluster.transmat_, in_memory.transmat_, rtol=1e-10)
