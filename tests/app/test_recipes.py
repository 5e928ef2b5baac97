"""Each named data set trains with its recipe unless an option overrides
it; the settings used are printed first."""
import json

import pytest

from npvae import VAE
from npvae.app import cli, figures, recipes, runs
from npvae.app.datasets import DATASETS
from test_cli import TINY, assert_usage_error, run

KEYS = {"likelihood", "activation", "hidden_dims", "latent_dim", "epochs", "batch_size",
        "learning_rate", "binarize"}


@pytest.fixture
def configs(monkeypatch):
    """The configs `npvae train` would create runs with (nothing is trained)."""
    made = []
    monkeypatch.setattr(runs, "create", lambda config, *args, **kwargs: made.append(config) or 0)
    return made


def test_every_named_data_set_has_a_whole_recipe():
    assert set(recipes.RECIPES) == set(DATASETS)
    for name in DATASETS:
        assert set(recipes.recipe(name)) == KEYS
    assert recipes.recipe("my.npy") == dict(recipes.RECIPES["digits"], epochs=10)


@pytest.mark.parametrize("name", DATASETS)
def test_train_uses_the_recipe_and_prints_it(configs, capsys, name):
    code, out, err = run(capsys, "train", "--dataset", name.upper())
    assert code == 0, err
    (config,) = configs
    assert {k: config[k] for k in KEYS} == recipes.RECIPES[name]
    assert config["dataset"] == name and config["obs_var"] is None
    r = recipes.RECIPES[name]
    assert out.startswith(f"settings: --likelihood {r['likelihood']}")
    assert f"--hidden {','.join(map(str, r['hidden_dims']))} --latent-dim {r['latent_dim']} " \
           f"--epochs {r['epochs']} --batch-size {r['batch_size']}" in out
    assert out.endswith(f"({name} recipe)\n")


def test_frey_face_gets_a_smooth_gaussian_decoder(configs, capsys):
    assert run(capsys, "train", "--dataset", "frey-face")[0] == 0
    assert {k: configs[0][k] for k in ("likelihood", "activation", "hidden_dims", "epochs")} \
        == {"likelihood": "gaussian", "activation": "tanh", "hidden_dims": [200], "epochs": 200}


def test_options_given_override_the_recipe(configs, capsys):
    code, out, _ = run(capsys, "train", "--dataset", "frey-face", "--activation", "relu",
                       "--epochs", "3", "--obs-var", "0.02")
    assert code == 0
    config = configs[0]
    assert config["activation"] == "relu" and config["epochs"] == 3
    assert config["obs_var"] == 0.02 and config["hidden_dims"] == [200]
    assert "--obs-var 0.02 --activation relu" in out
    assert "(frey-face recipe; given: --obs-var 0.02, --activation relu, --epochs 3)" in out
    run(capsys, "train", "--dataset", "mnist", "--no-binarize")
    assert configs[1]["binarize"] is False and configs[1]["latent_dim"] == 20


def test_a_fixed_noise_variance_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])
    code, out, err = run(capsys, "train", *TINY, "--likelihood", "gaussian",
                         "--obs-var", "0.05", "--out", tmp_path / "r")
    assert code == 0, err
    model = VAE.load(tmp_path / "r")
    assert model.obs_var == 0.05 and "obs_logvar" not in model.params_
    assert json.loads((tmp_path / "r" / "config.json").read_text())["obs_var"] == 0.05
    assert run(capsys, "evaluate", tmp_path / "r", "--k", "2")[0] == 0


@pytest.mark.parametrize("argv, fragment", [
    (["--obs-var", "0.1"], "--obs-var is the noise variance of --likelihood gaussian"),
    (["--obs-var", "0"], "argument --obs-var: must be a finite number > 0"),
    (["--likelihood", "gaussian", "--obs-var", "inf"], "argument --obs-var"),
])
def test_bad_obs_var(tmp_path, capsys, argv, fragment):
    assert_usage_error(run(capsys, "train", *TINY, *argv, "--out", tmp_path / "r"), fragment)
    assert not (tmp_path / "r").exists()


def test_a_run_from_before_obs_var_still_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])
    assert run(capsys, "train", *TINY, "--out", tmp_path / "r")[0] == 0
    path = tmp_path / "r" / "config.json"
    config = json.loads(path.read_text())
    del config["obs_var"]
    path.write_text(json.dumps(config))
    assert run(capsys, "evaluate", tmp_path / "r", "--k", "2")[0] == 0
    assert run(capsys, "train", "--resume", tmp_path / "r", "--epochs", "3")[0] == 0


def test_resume_refuses_the_new_options_too(tmp_path, capsys):
    assert_usage_error(run(capsys, "train", "--resume", tmp_path, "--obs-var", "1",
                           "--no-binarize"), "not --obs-var, --binarize")
    assert cli.DEFAULTS["obs_var"] is None
