"""pandas in, the same fit out: DataFrames give the array's fit and keep their column names.

pandas is a test dependency (not a runtime one): these are the paths users with DataFrames take.
"""

import numpy as np
import pytest

import emkit
from emkit import datasets
from emkit.errors import DataError

pd = pytest.importorskip("pandas")

FAITHFUL = datasets.load("faithful")
NAMES = list(FAITHFUL.columns)


def _frame(values, dtype=None):
    frame = pd.DataFrame(values, columns=NAMES, index=np.arange(len(values)) * 10 + 3)
    return frame if dtype is None else frame.astype(dtype)


ESTIMATORS = {
    "GaussianMixture": lambda: emkit.GaussianMixture(2, random_state=0),
    "GaussianMixture diag": lambda: emkit.GaussianMixture(3, covariance_type="diag",
                                                          random_state=0),
    "GaussianHMM": lambda: emkit.GaussianHMM(2, random_state=0),
    "GMMHMM": lambda: emkit.GMMHMM(2, 2, random_state=0),
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_a_dataframe_gives_the_fit_of_its_array(name):
    X = FAITHFUL.data
    from_frame = ESTIMATORS[name]().fit(_frame(X))
    from_array = ESTIMATORS[name]().fit(X)
    assert list(from_frame.feature_names_in_) == NAMES
    assert not hasattr(from_array, "feature_names_in_")
    assert from_frame.lower_bound_ == from_array.lower_bound_
    np.testing.assert_array_equal(from_frame.predict(_frame(X)), from_array.predict(X))
    assert from_frame.score(_frame(X)) == from_array.score(X)


def test_columns_in_another_order_are_refused():
    model = emkit.GaussianMixture(2, random_state=0).fit(_frame(FAITHFUL.data))
    swapped = _frame(FAITHFUL.data)[NAMES[::-1]]
    with pytest.raises((DataError, ValueError), match="feature names"):
        model.predict(swapped)


def test_nullable_float_columns_with_pd_na_are_missing_values():
    X = FAITHFUL.data.copy()
    X[::7, 1] = np.nan
    frame = _frame(X, "Float64")
    assert frame.isna().to_numpy().sum() == np.isnan(X).sum()  # pd.NA, not NaN, in the frame
    from_frame = emkit.GaussianMixture(2, random_state=0).fit(frame)
    from_array = emkit.GaussianMixture(2, random_state=0).fit(X)
    assert from_frame.lower_bound_ == from_array.lower_bound_
    np.testing.assert_array_equal(from_frame.means_, from_array.means_)


def test_integer_series_of_symbols_for_a_categorical_hmm():
    symbols = np.random.default_rng(0).integers(0, 3, 300)
    from_frame = emkit.CategoricalHMM(2, random_state=0).fit(pd.DataFrame({"s": symbols}))
    from_array = emkit.CategoricalHMM(2, random_state=0).fit(symbols.reshape(-1, 1))
    np.testing.assert_array_equal(from_frame.emissionprob_, from_array.emissionprob_)


def test_count_table_as_a_dataframe():
    twins = datasets.load("twins")
    counts = twins.data[:, :40]
    frame = pd.DataFrame(counts, columns=list(twins.columns[:40]), index=list(twins.row_names))
    from_frame = emkit.DirichletMultinomialMixture(2, random_state=0).fit(frame)
    from_array = emkit.DirichletMultinomialMixture(2, random_state=0).fit(counts)
    np.testing.assert_array_equal(from_frame.alpha_, from_array.alpha_)


def test_imputer_keeps_index_and_columns_with_set_output():
    X = FAITHFUL.data.copy()
    X[[2, 5, 11], 1] = np.nan
    frame = _frame(X)
    filled = emkit.EMImputer(random_state=0).set_output(transform="pandas").fit_transform(frame)
    assert isinstance(filled, pd.DataFrame)
    assert list(filled.columns) == NAMES and filled.index.equals(frame.index)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(filled.to_numpy()[observed], X[observed])
    assert not filled.isna().any().any()
    as_array = emkit.EMImputer(random_state=0).fit_transform(X)
    np.testing.assert_allclose(filled.to_numpy(), as_array, rtol=0, atol=0)


def test_a_series_is_not_a_table():
    with pytest.raises(DataError, match="2-dimensional|one column|reshape"):
        emkit.GaussianMixture(2).fit(pd.Series(FAITHFUL.data[:, 0]))
