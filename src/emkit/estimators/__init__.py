"""The scikit-learn-style estimators users fit: one shared base (:mod:`~emkit.estimators.base`),
one parameter-constraints table per estimator (:mod:`~emkit.estimators.validation`), one module
per estimator family, model selection and model files."""


def __getattr__(name: str):
    # ``from emkit.estimators import GaussianMixture`` worked before the estimators had a package.
    if name == "GaussianMixture":
        from emkit.estimators.gaussian_mixture import GaussianMixture

        return GaussianMixture
    raise AttributeError(f"module 'emkit.estimators' has no attribute {name!r}")
