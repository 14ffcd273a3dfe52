"""Contract cases of the generic mixture (``emkit.models.mixture.MixtureModel``) over a bare
component family: everything but the family (posteriors, weight M-step, SQUAREM coordinates,
sample weights, the start) is the generic code, which is what a new mixture family gets."""

from __future__ import annotations

from emkit.families.gaussian import GaussianFamily
from emkit.models.mixture import MixtureModel

from .registry import ModelCase, register, two_gaussian_clusters

# reg_covar=0 as for the Gaussian mixture's own cases (registry.py): the M-step is then exact.
for covariance_type in ("full", "diag"):
    register(ModelCase(
        f"generic-mixture-gaussian-{covariance_type}",
        lambda covariance_type=covariance_type: MixtureModel(
            GaussianFamily(covariance_type, reg_covar=0.0), 2),
        two_gaussian_clusters,
    ))
