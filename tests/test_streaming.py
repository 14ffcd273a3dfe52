"""Fitting from data read chunk by chunk (.npy, Parquet, any sliceable array): the same fit as in
memory, only a sample of the chunks kept for initialisation, and clear errors for bad chunks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emkit import GaussianMixture
from emkit.data.chunks import (
    ArrayChunks,
    Batch,
    ChunkSource,
    NpyChunks,
    ParquetChunks,
    chunk_list,
    chunks_from_file,
    n_rows,
    row_sample,
)
from emkit.errors import DataError


def gaussian_rows(n_rows=3000, seed=0, missing=0.0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (n_rows // 2, 3)),
                   rng.normal([3.0, 1.0, -2.0], 0.6, (n_rows - n_rows // 2, 3))])
    X = rng.permutation(X)
    if missing:
        X[rng.uniform(size=X.shape) < missing] = np.nan
    return X


START = dict(weights_init=[0.5, 0.5], means_init=[[0.5, 0.0, 0.0], [2.0, 1.0, -1.0]],
             precisions_init=[np.eye(3), np.eye(3)])  # a start that does not depend on row order


def fit(X, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(2, tol=0.0, max_iter=15, **START, **options).fit(X)


def assert_same_fit(streamed, in_memory):
    np.testing.assert_allclose(streamed.history_, in_memory.history_, rtol=1e-12)
    np.testing.assert_allclose(streamed.means_, in_memory.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(streamed.covariances_, in_memory.covariances_, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("missing", [0.0, 0.15])
def test_npy_file_read_in_chunks_gives_the_in_memory_fit(tmp_path, missing):
    X = gaussian_rows(missing=missing)
    path = tmp_path / "rows.npy"
    np.save(path, X)
    source = NpyChunks(path, chunk_rows=400)
    assert [len(chunk) for chunk in source] == [400] * 7 + [200]
    assert_same_fit(fit(source), fit(X))


def test_float32_npy_and_a_memory_map(tmp_path):
    X = gaussian_rows().astype(np.float32)
    path = tmp_path / "rows.npy"
    np.save(path, X)
    in_memory = fit(X.astype(np.float64))
    assert_same_fit(fit(NpyChunks(path, 1000)), in_memory)
    assert_same_fit(fit(ArrayChunks(np.load(path, mmap_mode="r"), 512)), in_memory)


def test_parquet_with_null_cells_gives_the_fit_with_nan(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    X = gaussian_rows(missing=0.1)
    names = ["a", "b", "c"]
    table = pa.table({name: pa.array(X[:, j], mask=np.isnan(X[:, j]))
                      for j, name in enumerate(names)} | {"label": ["x"] * len(X)})
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path, row_group_size=700)
    with pytest.raises(DataError, match="'label' .* not numeric"):
        ParquetChunks(path)
    source = chunks_from_file(path, chunk_rows=500, columns=names)
    model = fit(source)
    assert list(model.feature_names_in_) == names
    assert_same_fit(model, fit(X))


def test_only_a_sample_of_streamed_chunks_is_kept_for_initialisation():
    X = gaussian_rows(10_000)
    source = ArrayChunks(X, chunk_rows=1000)
    sample = chunk_list(source, max_rows=3500)
    assert sum(n_rows(chunk) for chunk in sample) == 3000  # whole chunks within the budget
    starts = {int(np.flatnonzero((X == chunk[0]).all(axis=1))[0]) for chunk in sample}
    assert starts <= set(range(0, 10_000, 1000))
    assert [c.tolist() for c in chunk_list(source, 3500)] == [c.tolist() for c in sample]
    assert len(chunk_list(source, max_rows=10)) == 1  # at least one chunk
    assert len(chunk_list([X[:5], X[5:]], max_rows=1)) == 2  # data in memory: every chunk


def test_a_streamed_fit_initialises_itself():
    X = gaussian_rows(4000)
    model = GaussianMixture(2, random_state=0).fit(ArrayChunks(X, 500))
    assert model.converged_
    truth = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -2.0]])
    means = model.means_[np.argsort(model.means_[:, 0])]
    np.testing.assert_allclose(means, truth, atol=0.1)


class ChangingWidth(ChunkSource):
    """A source whose third chunk has a column less (e.g. a file rewritten during the fit)."""

    n_features, chunk_rows = 3, 100

    def __iter__(self):
        X = gaussian_rows(500)
        for start in range(0, 500, 100):
            yield X[start:start + 100, :2] if start == 200 else X[start:start + 100]


def test_bad_chunks_and_files_get_clear_errors(tmp_path):
    with pytest.raises(DataError, match="chunk 2 of the data has shape \\(100, 2\\), but the "
                                        "data have 3 columns"):
        GaussianMixture(2, random_state=0).fit(ChangingWidth())

    X = gaussian_rows(300)
    X[123, 1] = np.inf
    with pytest.raises(DataError, match="chunk 1 of the data contains infinity"):
        GaussianMixture(2, random_state=0).fit(ArrayChunks(X, 100))

    path = tmp_path / "rows.npy"
    np.save(path, gaussian_rows(300))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        GaussianMixture(2, random_state=0).fit(NpyChunks(path, 50))
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(DataError, match="is not a .npy file"):
        NpyChunks(tmp_path / "text.npy")
    with pytest.raises(DataError, match="cannot read"):
        NpyChunks(tmp_path / "absent.npy")
    np.save(tmp_path / "vector.npy", np.ones(5))
    with pytest.raises(DataError, match="2-D C-ordered numeric"):
        NpyChunks(tmp_path / "vector.npy")
    with pytest.raises(DataError, match="streams .npy, .parquet and .zarr"):
        chunks_from_file(tmp_path / "rows.csv")
    with pytest.raises(DataError, match="chunk_rows must be a positive integer"):
        ArrayChunks(X, 0)
    with pytest.raises(DataError, match="sample_weight and labels cannot go with streamed"):
        GaussianMixture(2).fit(ArrayChunks(X, 100), sample_weight=np.ones(300))


def test_cli_streams_npy_files_and_reports_bad_options(tmp_path, capsys):
    import json

    from emkit.cli import main

    X = gaussian_rows(4000, seed=9)
    np.save(tmp_path / "rows.npy", X)
    np.savetxt(tmp_path / "rows.csv", X, delimiter=",", header="a,b,c", comments="")
    options = ["-k", "2", "--tol", "1e-10", "--max-iter", "500", "--json"]
    assert main(["fit", "gmm", str(tmp_path / "rows.npy"), "--chunk-size", "700",
                 "-o", str(tmp_path / "m.emkit")] + options) == 0
    streamed = json.loads(capsys.readouterr().out)
    assert main(["fit", "gmm", str(tmp_path / "rows.csv")] + options) == 0
    in_memory = json.loads(capsys.readouterr().out)
    assert streamed["n_samples"] == in_memory["n_samples"] == 4000
    assert streamed["columns"] == ["x0", "x1", "x2"]
    np.testing.assert_allclose(streamed["log_likelihood"], in_memory["log_likelihood"],
                               rtol=1e-9)
    np.testing.assert_allclose(streamed["bic"], in_memory["bic"], rtol=1e-9)

    assert main(["fit", "gmm", str(tmp_path / "rows.csv"), "-k", "2", "--chunk-size", "100"]) == 2
    assert "a CSV file is read whole" in capsys.readouterr().err


def test_cli_reports_a_dask_scheduler_that_does_not_answer(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    from emkit.cli import main

    np.save(tmp_path / "rows.npy", gaussian_rows(300))
    assert main(["fit", "gmm", str(tmp_path / "rows.npy"), "-k", "2",
                 "--dask-scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_same_seed_same_fit_in_memory_from_npy_chunks_and_from_dask(tmp_path):
    """The start sees the same rows in the same order whatever holds them (data within the
    initialisation's sample size), so random_state gives the same fit from every source."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    X = rng.permutation(np.vstack([rng.normal(centre, 1.0, (400, 2)) for centre in (0, 3, 6)]))
    path = tmp_path / "rows.npy"
    np.save(path, X)
    fits = [GaussianMixture(3, random_state=0).fit(source)
            for source in (X, NpyChunks(path, chunk_rows=100),
                           da.from_array(X, chunks=(250, 2)))]
    for other in fits[1:]:
        np.testing.assert_allclose(other.weights_, fits[0].weights_, rtol=1e-10)
        np.testing.assert_allclose(other.means_, fits[0].means_, rtol=1e-10)
        assert other.lower_bound_ == pytest.approx(fits[0].lower_bound_, rel=1e-12)


class _UnsizedChunks(ChunkSource):
    """A streamed source that does not know its number of rows before a pass."""

    def __init__(self, chunks):
        self.chunks, self.n_features = chunks, chunks[0].shape[1]

    def __iter__(self):
        yield from (chunk.copy() for chunk in self.chunks)


def test_the_initialisation_sample_is_chosen_by_global_row_index(tmp_path):
    """row_sample picks the same rows (rng.choice over the global row numbers, in row order)
    from an array, uneven chunks in memory, a .npy file, a sliced array and a source of unknown
    size; weights and labels of Batch chunks follow their rows."""
    X = np.arange(3000.0).reshape(1000, 3)
    np.save(tmp_path / "rows.npy", X)
    expected = X[np.sort(np.random.default_rng(5).choice(1000, 100, replace=False))]
    cuts = [0, 7, 300, 301, 999, 1000]
    pieces = [X[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    sources = [X, pieces, NpyChunks(tmp_path / "rows.npy", chunk_rows=64),
               ArrayChunks(X, chunk_rows=333), _UnsizedChunks(pieces)]
    for source in sources:
        sample = np.concatenate(row_sample(source, 100, np.random.default_rng(5)))
        np.testing.assert_array_equal(sample, expected)
    batches = [Batch(p, sample_weight=p[:, 0] + 0.5, labels=p[:, 1].astype(int)) for p in pieces]
    sample = row_sample(batches, 100, np.random.default_rng(5))
    np.testing.assert_array_equal(np.concatenate([b.X for b in sample]), expected)
    np.testing.assert_array_equal(np.concatenate([b.sample_weight for b in sample]),
                                  expected[:, 0] + 0.5)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in sample]), expected[:, 1])
    # Small data: every row, and nothing drawn from the generator.
    rng = np.random.default_rng(5)
    for source in sources:
        np.testing.assert_array_equal(np.concatenate(row_sample(source, 1000, rng)), X)
        np.testing.assert_array_equal(np.concatenate(row_sample(source, None, rng)), X)
    assert rng.uniform() == np.random.default_rng(5).uniform()


def test_same_seed_same_fit_from_every_source_above_the_initialisation_sample(tmp_path):
    """250,000 rows, more than the initialisation's 100,000-row sample and the 200,000 rows
    within which the sources agreed before: memory, NpyChunks and Dask still give one fit."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(1)
    X = rng.permutation(np.concatenate([rng.normal(0.0, 1.0, 150_000),
                                        rng.normal(4.0, 0.5, 100_000)]))[:, None]
    np.save(tmp_path / "rows.npy", X)
    fits = [GaussianMixture(2, random_state=0).fit(source)
            for source in (X, NpyChunks(tmp_path / "rows.npy", chunk_rows=60_000),
                           da.from_array(X, chunks=(70_000, 1)))]
    for other in fits[1:]:
        np.testing.assert_allclose(other.weights_, fits[0].weights_, rtol=1e-9)
        np.testing.assert_allclose(other.means_, fits[0].means_, rtol=1e-9)
        assert other.lower_bound_ == pytest.approx(fits[0].lower_bound_, rel=1e-12)
    assert fits[0].weights_.min() == pytest.approx(0.4, abs=0.01)
