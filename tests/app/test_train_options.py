"""What ``npvae train``'s options reach: every model option's value ends up
in the trained model's ``get_params()`` (a ``--kl-warmup`` dropped on its
way into the model passed every other test), and ``--binarize`` draws new
bits every epoch, the same ones again from the same seed."""
import re

import numpy as np
import pytest

from npvae import IWAE, VAE, ConditionalVAE, TwoLayerVAE
from npvae.app import cli, figures

#: Options of ``train`` that say where the data and the run are, not what
#: the model is; ``--binarize`` is tested by the bits below.
NOT_MODEL_OPTIONS = {"-h", "--help", "--dataset", "--data-dir", "--download", "--binarize",
                     "--no-binarize", "--out", "--force", "--resume"}

#: (option, value given, get_params key, the value it must hold).  Each
#: value differs from the file recipe's and from the default, so that a
#: dropped option shows.
GIVEN = [
    ("--epochs", "3", "epochs", 3),
    ("--batch-size", "50", "batch_size", 50),
    ("--lr", "0.002", "learning_rate", 0.002),
    ("--latent-dim", "3", "latent_dim", 3),
    ("--hidden", "6,5", "hidden_dims", (6, 5)),
    ("--activation", "tanh", "activation", "tanh"),
    ("--likelihood", "gaussian", "likelihood", "gaussian"),
    ("--obs-var", "0.5", "obs_var", 0.5),
    ("--beta", "0.7", "beta", 0.7),
    ("--kl-warmup", "2", "kl_warmup", 2.0),
    ("--dtype", "float64", "dtype", "float64"),
    ("--seed", "7", "random_state", 7),
    ("--model", "iwae", None, IWAE),
    ("--k", "3", "k", 3),
    ("--prior", "mixture", "prior", "mixture"),
    ("--components", "4", "n_components", 4),
    ("--gradient-estimator", "stl", "gradient_estimator", "stl"),
]
#: An option without a value: the model's class.
CONDITIONAL = ("--conditional", None, None, ConditionalVAE)
#: Two stochastic layers, a model of another class (with none of beta, the prior, labels).
TWO_LAYERS = ("--stochastic-layers", "2", None, TwoLayerVAE)


def _train(argv):
    """``npvae train argv`` without drawing (figures are the slow part)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(figures, "draw_run_figures", lambda *args: [])
        assert cli.main(["train", *argv]) == 0


def _grey_file(folder, labels=False):
    rng = np.random.default_rng(0)
    X = rng.random((120, 12))
    if labels:
        path = folder / "grey.npz"
        np.savez(path, X=X, y=rng.integers(0, 3, size=120))
    else:
        path = folder / "grey.npy"
        np.save(path, X)
    return path


@pytest.fixture(scope="module")
def given_run(tmp_path_factory):
    """One run given every option of GIVEN at once, loaded back."""
    folder = tmp_path_factory.mktemp("options")
    argv = ["--dataset", str(_grey_file(folder)), "--out", str(folder / "run")]
    for option, value, _, _ in GIVEN:
        argv += [option, value]
    _train(argv)
    return VAE.load(folder / "run")


@pytest.fixture(scope="module")
def two_layer_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_layers")
    _train(["--dataset", str(_grey_file(folder)), "--stochastic-layers", "2",
            "--epochs", "1", "--out", str(folder / "run")])
    return TwoLayerVAE.load(folder / "run")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conditional")
    _train(["--dataset", str(_grey_file(folder, labels=True)), "--conditional",
            "--epochs", "1", "--out", str(folder / "run")])
    return VAE.load(folder / "run")


def test_every_model_option_of_train_is_tested(capsys):
    assert cli.main(["train", "--help"]) == 0
    usage = capsys.readouterr().out.split("\n\n")[0]      # every option, once
    listed = set(re.findall(r"\[(--?[a-z][\w-]*)", usage.replace("| ", "[")))
    tested = {option for option, *_ in GIVEN + [CONDITIONAL, TWO_LAYERS]}
    assert listed - NOT_MODEL_OPTIONS == tested


@pytest.mark.parametrize("option, value, key, expected", GIVEN + [CONDITIONAL, TWO_LAYERS],
                         ids=[case[0] for case in GIVEN + [CONDITIONAL, TWO_LAYERS]])
def test_the_trained_model_holds_the_value_given(option, value, key, expected, request):
    model = request.getfixturevalue({"--conditional": "conditional_run",
                                     "--stochastic-layers": "two_layer_run"}.get(option,
                                                                                "given_run"))
    if key is None:
        assert type(model) is expected
    else:
        got = model.get_params()[key]
        assert got == expected and type(got) is type(expected), (option, got)


def _bits_drawn(argv):
    """The training arrays that ``npvae train argv`` hands to ``fit_epoch``,
    one per epoch."""
    drawn = []
    real = VAE.fit_epoch

    def recording(model, X, *args, **kwargs):
        drawn.append(np.array(X, copy=True))
        return real(model, X, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(VAE, "fit_epoch", recording)
        _train(argv)
    return drawn


def test_binarize_draws_new_bits_every_epoch_and_the_same_from_the_seed(tmp_path):
    data = _grey_file(tmp_path)
    common = ["--dataset", str(data), "--binarize", "--hidden", "4", "--epochs", "3"]
    first = _bits_drawn(common + ["--out", str(tmp_path / "a")])
    again = _bits_drawn(common + ["--out", str(tmp_path / "b")])
    other = _bits_drawn(common + ["--seed", "1", "--out", str(tmp_path / "c")])
    assert len(first) == 3
    for bits in first:
        assert set(np.unique(bits)) == {0.0, 1.0}
    n = first[0].size
    # New bits each epoch: about half of them differ for grey levels
    # uniform on [0, 1] (the chance that two draws differ is 1/3).
    for a in range(3):
        for b in range(a):
            assert np.mean(first[a] != first[b]) > 0.25, (a, b)
    # Drawn with the pixels' probabilities: the mean over the epochs is near X.
    grey = np.load(data)
    assert abs(np.mean(first) - grey.mean()) < 4 * 0.5 / np.sqrt(3 * n)
    for bits, same in zip(first, again):
        np.testing.assert_array_equal(bits, same)
    assert all(np.mean(bits != changed) > 0.25 for bits, changed in zip(first, other))
