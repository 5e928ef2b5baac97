"""Runs say what they are (issue #22, items 7 and 8): ``npvae train`` names
the model it trains and the values of the options given; ``npvae
gradcheck`` checks every model of the family, fresh or a trained run's, and
ends with the line :meth:`GradcheckReport.summary` gives in Python."""
import numpy as np
import pytest

from npvae import IWAE, VAE, ConditionalVAE
from npvae.app import cli, figures, runs
from npvae.app.checkpoints import load_checkpoint
from npvae.core import gradcheck, layers

TINY = ["--hidden", "8", "--batch-size", "128", "--epochs", "1"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_figures(monkeypatch):
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])


@pytest.mark.parametrize("argv, kind", [
    ([], "a VAE 64-8-2 on digits"),
    (["--model", "iwae", "--k", "3"], "an IWAE (k=3) 64-8-2 on digits"),
    (["--prior", "mixture", "--components", "4"],
     "a VAE 64-8-2 with a 4-component mixture prior on digits"),
    (["--conditional", "--likelihood", "continuous_bernoulli"],
     "a conditional VAE (10 classes) 64-8-2 with a continuous Bernoulli likelihood on digits"),
    (["--likelihood", "gaussian", "--model", "iwae", "--prior", "mixture"],
     "an IWAE (k=5) 64-8-2 with a 10-component mixture prior and a Gaussian likelihood"),
])
def test_train_names_the_model(tmp_path, capsys, no_figures, argv, kind):
    code, out, err = run(capsys, "train", *TINY, *argv, "--out", tmp_path / "r")
    assert code == 0, err
    assert f"training {kind}" in out


def test_train_prints_the_values_of_the_options_given(tmp_path, capsys, no_figures):
    code, out, err = run(capsys, "train", *TINY, "--model", "iwae", "--k", "3", "--beta", "0.5",
                         "--hidden", "8,6", "--no-binarize", "--out", tmp_path / "r")
    assert code == 0, err
    settings = out.splitlines()[0]
    assert settings.endswith("(digits recipe; given: --beta 0.5, --model iwae, --k 3, "
                             "--hidden 8,6, --epochs 1, --batch-size 128, --no-binarize)")


def test_describe_names_every_model():
    X = np.random.default_rng(0).random((6, 5))
    built = lambda m, **kw: m.initialize(5, X, **kw)  # noqa: E731
    assert runs.describe(built(VAE(hidden_dims=()))) == "a VAE 5-2"
    assert runs.describe(built(IWAE(k=7, hidden_dims=(4, 3)))) == "an IWAE (k=7) 5-4-3-2"
    assert runs.describe(built(ConditionalVAE(hidden_dims=(4,)), classes=["a", "b"])) == \
        "a conditional VAE (2 classes) 5-4-2"


# ------------------------------------------------------------ gradcheck
FAMILY = [
    ([], lambda p: VAE(**p), None),
    (["--model", "iwae", "--k", "3"], lambda p: IWAE(k=3, **p), None),
    (["--conditional"], lambda p: ConditionalVAE(**p), np.arange(16) % 3),
    (["--prior", "mixture"], lambda p: VAE(prior="mixture", n_components=3, **p), None),
    (["--likelihood", "continuous_bernoulli"],
     lambda p: VAE(likelihood="continuous_bernoulli", **p), None),
]


@pytest.mark.parametrize("argv, make, y", FAMILY)
def test_gradcheck_checks_every_model_and_python_prints_the_same_line(capsys, argv, make, y):
    code, out, err = run(capsys, "gradcheck", *argv)
    assert code == 0, err
    rng = np.random.default_rng(0)
    X = rng.random((16, 10))
    model = make(dict(latent_dim=2, hidden_dims=(8,), activation="tanh", dtype="float64",
                      random_state=0))
    model.initialize(10, **({} if y is None else {"classes": np.unique(y)}))
    report = gradcheck.check_model(model, X, random_state=rng, y=y)
    assert out.splitlines()[-1] == report.summary()
    assert out.endswith(f"{report}\n")
    assert report.passed and "passed" in report.summary()
    assert len(report.rows) == len(model.params_)


def test_gradcheck_of_a_conditional_vae_catches_a_planted_bug(capsys, monkeypatch):
    real = layers.Join.backward
    # The label's columns' gradient lost: the first layer's W rows for them are wrong.
    monkeypatch.setattr(layers.Join, "backward",
                        lambda self, d: tuple(0.9 * g for g in real(self, d)))
    code, out, _ = run(capsys, "gradcheck", "--conditional")
    assert code == 1 and out.splitlines()[-1].endswith("FAILED")


def test_gradcheck_of_an_iwae_catches_a_planted_bug(capsys, monkeypatch):
    real = IWAE.forward_backward

    def scaled(self, batch, beta=1.0):
        terms = real(self, batch, beta)
        self.parameters_.grad *= 1.01
        return terms
    monkeypatch.setattr(IWAE, "forward_backward", scaled)
    assert run(capsys, "gradcheck", "--model", "iwae")[0] == 1


@pytest.fixture(scope="module")
def mixture_iwae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "iwae"
    assert cli.main(["train", *TINY, "--model", "iwae", "--k", "3", "--prior", "mixture",
                     "--components", "3", "--out", str(out)]) == 0
    return out


def test_gradcheck_of_a_run_checks_its_trained_model_in_float64(mixture_iwae_run, capsys,
                                                                 monkeypatch):
    checked = []
    real = cli.check_model
    monkeypatch.setattr(cli, "check_model", lambda model, X, **kw: checked.append(
        (model, X, kw)) or real(model, X, **kw))
    code, out, err = run(capsys, "gradcheck", mixture_iwae_run, "--samples", "5")
    assert code == 0, err
    assert out.splitlines()[0] == (f"checking {mixture_iwae_run} at epoch 1: an IWAE (k=3) "
                                   "64-8-2 with a 3-component mixture prior, cast to float64, "
                                   "on its first 5 training rows")
    (model, X, kw), trained = checked[0], load_checkpoint(mixture_iwae_run)
    assert model.dtype == "float64" and trained.dtype == "float32"
    assert isinstance(model, IWAE) and model.k == 3 and X.shape == (5, 64)
    for name, value in trained.params_.items():
        np.testing.assert_array_equal(model.params_[name], value.astype(np.float64))
    data = runs.load_splits(runs.read_config(mixture_iwae_run)[1])
    np.testing.assert_array_equal(X, data.X_train[:5])
    again = real(model, X, **dict(kw, random_state=np.random.default_rng(0)))
    assert out.splitlines()[-1] == again.summary()


def test_gradcheck_of_a_conditional_run_uses_its_labels(tmp_path, capsys, no_figures):
    assert run(capsys, "train", *TINY, "--conditional", "--out", tmp_path / "c")[0] == 0
    code, out, err = run(capsys, "gradcheck", tmp_path / "c", "--samples", "4")
    assert code == 0 and "a conditional VAE (10 classes) 64-8-2" in out, err


@pytest.mark.parametrize("argv, fragment", [
    (["--latent-dim", "3"], "--latent-dim 3 is for a fresh model, without RUN"),
    (["--conditional"], "--conditional is for a fresh model"),
])
def test_gradcheck_of_a_run_refuses_the_options_of_a_fresh_model(mixture_iwae_run, capsys,
                                                                  argv, fragment):
    code, _, err = run(capsys, "gradcheck", mixture_iwae_run, *argv)
    assert code == 2 and fragment in err and err.count("\n") == 1


def test_gradcheck_refuses_a_conditional_iwae(capsys):
    code, _, err = run(capsys, "gradcheck", "--model", "iwae", "--conditional")
    assert code == 2 and "it has no --model iwae" in err


def test_gradcheck_of_a_dreg_run_checks_the_gradient_of_its_bound(tmp_path, capsys, no_figures):
    code, out, err = run(capsys, "train", *TINY, "--model", "iwae", "--gradient-estimator",
                         "dreg", "--out", tmp_path / "d")
    assert code == 0 and "training an IWAE (k=5) 64-8-2 with DReG encoder gradients" in out, err
    # DReG's gradient is an estimate of the bound's, not its gradient: checked as is, it fails.
    model = load_checkpoint(tmp_path / "d")
    X = runs.load_splits(runs.read_config(tmp_path / "d")[1]).X_train[:16]
    dreg = IWAE(**dict(model.get_params(), dtype="float64")).initialize(64)
    dreg.parameters_.theta[...] = model.parameters_.theta
    assert not gradcheck.check_model(dreg, X).passed
    code, out, err = run(capsys, "gradcheck", tmp_path / "d")
    assert code == 0 and out.splitlines()[0].endswith("rows, the gradient of its bound"), err
