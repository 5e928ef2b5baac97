"""scikit-learn's own estimator checks, run on VAE and Autoencoder."""
import pytest

pytest.importorskip("sklearn", minversion="1.6")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from npvae import VAE, Autoencoder  # noqa: E402

MODELS = (VAE, Autoencoder)

# The Bernoulli default is left out of scikit-learn's checks: they feed it
# data outside [0, 1], which it refuses by design.  The Gaussian
# configurations run all of them, and pass all of them: score_samples draws
# each row's noise from that row's values (npvae.core.rng.row_normals), so it is
# invariant to the order and the subsets of the rows.


@parametrize_with_checks(
    [cls(likelihood="gaussian", hidden_dims=(8,), epochs=2, random_state=0)
     for cls in MODELS] + [VAE(likelihood="gaussian", hidden_dims=(), epochs=2,
                               dtype="float64", random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
