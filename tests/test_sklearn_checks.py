"""scikit-learn's own estimator checks, run on VAE and Autoencoder."""
import pytest

pytest.importorskip("sklearn", minversion="1.6")  # expected_failed_checks

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from npvae import VAE, Autoencoder  # noqa: E402

MODELS = (VAE, Autoencoder)

# The Bernoulli default is left out of scikit-learn's checks: they feed it
# data outside [0, 1], which it refuses by design.  The Gaussian
# configurations run all of them; the one known failure is listed with why.
_MONTE_CARLO = ("VAE.score_samples is a one-sample Monte Carlo ELBO; its noise "
                "comes from one seeded stream in row order, so a row's estimate "
                "depends on its position in X")


def _expected_failures(estimator):
    failures = {}
    if isinstance(estimator, VAE):
        failures["check_methods_sample_order_invariance"] = _MONTE_CARLO
        failures["check_methods_subset_invariance"] = _MONTE_CARLO
    return failures


@parametrize_with_checks(
    [cls(likelihood="gaussian", hidden_dims=(8,), epochs=2, random_state=0)
     for cls in MODELS] + [VAE(likelihood="gaussian", hidden_dims=(), epochs=2,
                               dtype="float64", random_state=0)],
    expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
