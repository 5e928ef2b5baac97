"""``npvae train --stochastic-layers 2`` and the verbs that take its run
folder (docs/math.md §9c): the layout scaled from --latent-dim and
--hidden, evaluate with active units per layer, the figure verbs, a resume
bit for bit, gradcheck, and bad values as one line with exit status 2."""
import json
import shutil

import numpy as np
import pytest

from npvae import TwoLayerIWAE
from npvae.app import cli, figures, runs
from npvae.app.checkpoints import load_checkpoint

TINY = ["--hidden", "8", "--latent-dim", "2", "--batch-size", "128", "--stochastic-layers", "2"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def two_layer_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "two"
    with pytest.MonkeyPatch.context() as patch:   # the figure verbs below draw
        patch.setattr(figures, "draw_run_figures", lambda *args: [])
        assert cli.main(["train", *TINY, "--model", "iwae", "--k", "3", "--epochs", "2",
                         "--out", str(out)]) == 0
    return out


def test_train_writes_a_two_layer_run(two_layer_run):
    config = json.loads((two_layer_run / "config.json").read_text())
    assert config["stochastic_layers"] == 2 and config["model"] == "iwae" and config["k"] == 3
    model = load_checkpoint(two_layer_run)
    assert type(model) is TwoLayerIWAE and model.k == 3 and model.n_iter_ == 2
    # z2 --latent-dim wide, z1 twice that; the --hidden widths below z1, halved below z2.
    assert tuple(model.latent_dims) == (4, 2)
    assert tuple(map(tuple, model.hidden_dims)) == ((8,), (4,))
    assert runs.describe(model) == "a two-layer IWAE (k=3) 64-8-4-4-2"


def test_evaluate_counts_active_units_per_layer(two_layer_run, capsys):
    code, out, _ = run(capsys, "evaluate", two_layer_run, "--k", "20", "--jobs", "1")
    assert code == 0
    assert "of 4+2  (KL sampled: the two-layer model has no KL per dimension)" in out
    assert "log p(x), IWAE k=20" in out


@pytest.mark.parametrize("verb", ["sample", "reconstruct", "interpolate"])
def test_figure_verbs_take_the_run(two_layer_run, tmp_path, capsys, verb):
    code, out, _ = run(capsys, verb, two_layer_run, "--out", tmp_path / f"{verb}.png")
    assert code == 0 and (tmp_path / f"{verb}.png").stat().st_size > 0


def test_resume_gives_the_same_bits_as_one_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(capsys, "train", *TINY, "--epochs", "3", "--out", straight)[0] == 0
    assert run(capsys, "train", *TINY, "--epochs", "2", "--out", split)[0] == 0
    assert run(capsys, "train", "--resume", split, "--epochs", "3")[0] == 0
    a, b = load_checkpoint(straight), load_checkpoint(split)
    assert a.n_iter_ == b.n_iter_ == 3 and a.stochastic_layers == 2
    np.testing.assert_array_equal(a.parameters_.theta, b.parameters_.theta)


def test_gradcheck_of_a_fresh_two_layer_model_and_of_the_run_pass(two_layer_run, capsys):
    code, out, _ = run(capsys, "gradcheck", "--stochastic-layers", "2", "--model", "iwae")
    assert code == 0 and "p_z1.logvar.W" in out and "passed" in out
    code, out, _ = run(capsys, "gradcheck", two_layer_run, "--samples", "4")
    assert code == 0 and "a two-layer IWAE (k=3) 64-8-4-4-2" in out and "passed" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--stochastic-layers", "3"], "argument --stochastic-layers: invalid choice: 3"),
    (["--stochastic-layers", "2", "--beta", "2"],
     "--stochastic-layers 2 trains the bound itself, with p(z2) = N(0, I) and no labels: "
     "it takes no --beta 2.0"),
    (["--stochastic-layers", "2", "--gradient-estimator", "dreg"],
     "TwoLayerVAE.gradient_estimator='dreg' needs importance weights"),
])
def test_bad_values_are_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    code, _, err = run(capsys, "train", *argv, "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and err.startswith("npvae: error: ") and err.count("\n") == 1
    assert fragment in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("edit, fragment", [
    # Before: true and 2.0 passed the check "1 or 2" (True == 1, 2.0 == 2).
    ({"stochastic_layers": True}, "'stochastic_layers' must be 1 or 2, got True"),
    ({"stochastic_layers": 2.0}, "'stochastic_layers' must be 1 or 2, got 2.0"),
    # Before: a two-layer run dropped beta and kl_warmup unread, so true
    # (== 1.0) and false (== 0.0) passed where a one-layer run refuses them.
    ({"beta": True}, "it takes no --beta True"),
    ({"kl_warmup": False}, "it takes no --kl-warmup False"),
])
@pytest.mark.parametrize("verb", ["evaluate", "resume"])
def test_a_config_json_edited_to_a_bool_or_float_is_named(two_layer_run, tmp_path, capsys,
                                                          edit, fragment, verb):
    run_dir = tmp_path / "edited"
    shutil.copytree(two_layer_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, **edit}))
    argv = ["train", "--resume", run_dir, "--epochs", "3"] if verb == "resume" else [verb, run_dir]
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("npvae: error: ") and err.count("\n") == 1
    assert fragment in err


def test_a_flag_refused_with_two_layers_is_named_without_a_value(tmp_path, capsys):
    code, _, err = run(capsys, "train", *TINY, "--conditional", "--out", tmp_path / "run")
    assert code == 2 and err.rstrip().endswith("and no labels: it takes no --conditional")


def test_a_config_json_calling_the_two_layer_iwae_a_vae_is_named_by_its_model(two_layer_run):
    # The model's kind is compared first: the k that config.json keeps (3, as trained) is
    # no contradiction, though a VAE is built without it.
    run, config = runs.read_config(two_layer_run)
    with pytest.raises(ValueError, match="model 'vae' contradicts the run's checkpoint, "
                                         "trained with model 'iwae'"):
        runs.check_checkpoint(run, {**config, "model": "vae"}, load_checkpoint(run))
