"""Tests of the ``npvae`` command, run in-process through ``main(argv)``
(which returns the exit status), plus subprocesses for the entry point
and a real Ctrl-C."""
import argparse
import csv
import functools
import gzip
import http.server
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from npvae import VAE
from npvae.app import cli, figures, plots, recipes, runs
from npvae.app.checkpoints import load_checkpoint
from npvae.models.evaluation import importance_weighted_log_likelihood
from conftest import as_earlier_pair, rewrite_checkpoint

TINY = ["--hidden", "8", "--batch-size", "128", "--epochs", "2"]
ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    """``main(argv)``; returns (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result, *fragments):
    """Exit status 2 and exactly one ``npvae: error:`` line on stderr."""
    code, out, err = result
    assert code == 2, err
    assert err.startswith("npvae: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def params_of(run_dir):
    model = load_checkpoint(run_dir)
    return {k: v.copy() for k, v in model.params_.items()}


def assert_png(path):
    path = Path(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 50 and img.shape[1] > 50 and img[..., :3].std() > 0.05


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny digits run shared by the read-only tests."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert cli.main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def no_figures(monkeypatch):
    """Skip drawing in tests about other things: figures are the slow part."""
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])


@pytest.fixture
def copy_of(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


# ------------------------------------------------------------ train
def test_train_writes_a_complete_run_folder(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["dataset"] == "digits" and config["hidden_dims"] == [8]
    assert config["latent_dim"] == 2 and config["epochs"] == 2 and config["seed"] == 0
    assert config["image_shape"] == [8, 8] and config["n_features"] == 64
    with open(trained / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "train_loss", "train_recon", "train_kl",
                            "val_loss", "val_recon", "val_kl"}
    for r in rows:
        assert float(r["val_loss"]) == pytest.approx(float(r["val_recon"]) + float(r["val_kl"]))
        assert float(r["train_kl"]) > 0
    # Only the last epoch's checkpoint is kept.
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["epoch-0002.npz"]
    model = VAE.load(trained)
    assert model.n_iter_ == 2 and model.hidden_dims == (8,)
    # The last validation row is the final model's ELBO terms on the validation split.
    X_val = runs.load_splits(json.loads((trained / "config.json").read_text())).X_val
    log_px, kl = model.elbo_terms(X_val, random_state=0)
    assert float(rows[-1]["val_recon"]) == pytest.approx(-np.mean(log_px), rel=1e-6)
    assert float(rows[-1]["val_kl"]) == pytest.approx(np.mean(kl), rel=1e-6)
    figures = sorted(p.name for p in (trained / "figures").iterdir())
    assert figures == ["interpolations.png", "latent.png", "loss.png", "manifold.png",
                       "reconstructions.png", "samples.png"]
    for name in figures:
        assert_png(trained / "figures" / name)


def test_bare_npvae_train_learns_the_digits_and_draws(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "train")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "digits-vae"
    config = json.loads((run_dir / "config.json").read_text())
    # The settings before the recipes: the README's numbers come from them.
    digits = {"dataset": "digits", "data_dir": None, "binarize": False, "seed": 0,
              "latent_dim": 2, "hidden_dims": [128], "activation": "relu",
              "likelihood": "bernoulli", "beta": 1.0, "kl_warmup": 0.0, "batch_size": 32,
              "learning_rate": 1e-3, "dtype": "float32", "epochs": 100, "obs_var": None}
    assert {k: config[k] for k in digits} == digits
    with open(run_dir / "metrics.csv") as f:
        val = [float(r["val_loss"]) for r in csv.DictReader(f)]
    assert len(val) == 100 and val[-1] < 26.0 < 30.0 < val[0]
    assert len(list((run_dir / "figures").glob("*.png"))) == 6
    assert_png(run_dir / "figures" / "manifold.png")


def test_train_prints_epochs_and_where_the_figures_are(tmp_path, capsys):
    code, out, err = run(capsys, "train", *TINY, "--latent-dim", "3", "--dtype", "float64",
                         "--out", tmp_path / "r")
    assert code == 0, err
    assert VAE.load(tmp_path / "r").params_["mu.W"].dtype == np.float64
    assert "784" not in out and "VAE 64-8-3 on digits" in out
    assert out.count("\nepoch ") == 2 and "epoch 1/2  train " in out
    assert f"figure {tmp_path / 'r' / 'figures' / 'latent.png'}" in out
    assert "manifold.png" not in out  # only for latent_dim = 2


def test_default_run_folder_is_numbered_never_overwritten(tmp_path, monkeypatch, capsys,
                                                          no_figures):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "train", *TINY, "--epochs", "1")[0] == 0
    first = snapshot(tmp_path / "runs" / "digits-vae")
    assert run(capsys, "train", *TINY, "--epochs", "1", "--seed", "1")[0] == 0
    assert snapshot(tmp_path / "runs" / "digits-vae") == first
    assert (tmp_path / "runs" / "digits-vae-2" / "config.json").is_file()


def test_a_data_set_name_in_capitals_is_the_same_data_set(tmp_path, monkeypatch, capsys,
                                                          no_figures):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(recipes.RECIPES["digits"], "epochs", 1)  # 10 for a file
    code, _, err = run(capsys, "train", "--dataset", "DIGITS", "--hidden", "8")
    assert code == 0, err
    config = json.loads((tmp_path / "runs" / "digits-vae" / "config.json").read_text())
    assert config["dataset"] == "digits" and config["epochs"] == 1


def test_same_seed_same_bits_other_seed_other_bits(trained, tmp_path, capsys, no_figures):
    assert run(capsys, "train", *TINY, "--out", tmp_path / "a")[0] == 0
    assert run(capsys, "train", *TINY, "--out", tmp_path / "b", "--seed", "1")[0] == 0
    ref, a, b = params_of(trained), params_of(tmp_path / "a"), params_of(tmp_path / "b")
    assert all(np.array_equal(ref[k], a[k]) for k in ref)
    assert not np.array_equal(ref["mu.W"], b["mu.W"])
    assert (trained / "metrics.csv").read_bytes() == (tmp_path / "a" / "metrics.csv").read_bytes()


def test_resume_gives_the_same_bits_as_one_run(tmp_path, capsys, no_figures):
    args = ["--hidden", "8", "--batch-size", "128", "--binarize", "--kl-warmup", "2"]
    assert run(capsys, "train", *args, "--epochs", "4", "--out", tmp_path / "A")[0] == 0
    assert run(capsys, "train", *args, "--epochs", "2", "--out", tmp_path / "B")[0] == 0
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "B", "--epochs", "4")
    assert code == 0 and "resuming" in out and "epoch 3/4" in out and "epoch 1/" not in out
    a, b = params_of(tmp_path / "A"), params_of(tmp_path / "B")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (tmp_path / "A" / "metrics.csv").read_bytes() == \
        (tmp_path / "B" / "metrics.csv").read_bytes()
    assert json.loads((tmp_path / "B" / "config.json").read_text())["epochs"] == 4
    # Nothing left to do: says so and changes nothing.
    before = snapshot(tmp_path / "B")
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "B")
    assert code == 0 and "already trained 4 epochs" in out
    assert snapshot(tmp_path / "B") == before
    # Fewer epochs than done is a mistake, not a no-op.
    code, out, err = run(capsys, "train", "--resume", tmp_path / "B", "--epochs", "3")
    assert code == 2 and err.count("\n") == 1
    assert "--epochs is the new total" in err and "already trained 4 epochs" in err
    assert snapshot(tmp_path / "B") == before


def test_ctrl_c_in_an_epoch_keeps_the_last_whole_epoch(tmp_path, capsys, monkeypatch, no_figures):
    real = VAE.fit_epoch
    calls = []

    def interrupted_in_third_epoch(self, X, callback=None):
        calls.append(1)
        if len(calls) == 3:
            self.params_["mu.b"] += 1.0  # a partial epoch's changes must not be saved
            raise KeyboardInterrupt
        return real(self, X, callback)

    monkeypatch.setattr(VAE, "fit_epoch", interrupted_in_third_epoch)
    code, out, err = run(capsys, "train", *TINY, "--epochs", "5", "--out", tmp_path / "B")
    assert code == 130
    assert "saved at epoch 2" in err and f"npvae train --resume {tmp_path / 'B'}" in err
    assert load_checkpoint(tmp_path / "B").n_iter_ == 2
    monkeypatch.setattr(VAE, "fit_epoch", real)
    assert run(capsys, "train", "--resume", tmp_path / "B")[0] == 0
    assert run(capsys, "train", *TINY, "--epochs", "5", "--out", tmp_path / "A")[0] == 0
    a, b = params_of(tmp_path / "A"), params_of(tmp_path / "B")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_ctrl_c_while_saving_saves_the_finished_epoch(tmp_path, capsys, monkeypatch, no_figures):
    real = runs.save_checkpoint

    def interrupted_at_epoch_2(model, path, extra=None):
        if model.n_iter_ == 2 and not hasattr(interrupted_at_epoch_2, "done"):
            interrupted_at_epoch_2.done = True
            raise KeyboardInterrupt
        return real(model, path, extra)

    monkeypatch.setattr(runs, "save_checkpoint", interrupted_at_epoch_2)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "4", "--out", tmp_path / "B")
    assert code == 130 and "saved at epoch 2" in err
    model, extra = load_checkpoint(tmp_path / "B", return_extra=True)
    assert model.n_iter_ == 2 and [m["epoch"] for m in extra["metrics"]] == [1, 2]


def test_ctrl_c_is_held_back_until_the_block_is_done():
    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with runs.ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal has arrived by now
            done.append("the checkpoint is written")
    assert done == ["the checkpoint is written"]
    assert signal.getsignal(signal.SIGINT) is before


def saved_epochs(run_dir):
    return [int(p.stem[6:]) for p in (run_dir / "checkpoints").glob("epoch-*.npz")]


def signal_npvae(tmp_path, args, ready, what, settle=0.0, sig=signal.SIGINT, timeout=60):
    """Run ``python -m npvae ARGS`` in ``tmp_path`` (its stdout in
    ``stdout.txt`` there); once ``ready()`` holds (within 60 s, else fail
    saying no ``what``) and ``settle`` seconds more, send it ``sig``.
    Returns its exit status and stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(tmp_path / "stdout.txt", "w") as stdout:
        # A shell that runs the suite in the background (as CI may) hands its
        # children SIGINT ignored, and Python keeps it so: restore the default
        # so that the child installs its KeyboardInterrupt handler.
        proc = subprocess.Popen([sys.executable, "-m", "npvae", *map(str, args)], cwd=tmp_path,
                                env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 60
            while not ready():
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, f"no {what} after 60 s"
                time.sleep(0.01)
            time.sleep(settle)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return proc.returncode, err


def test_sigint_to_a_real_process_stops_at_a_saved_epoch(tmp_path):
    code, err = signal_npvae(
        tmp_path, ["train", "--hidden", "8", "--epochs", "100000", "--out", tmp_path / "B"],
        lambda: max(saved_epochs(tmp_path / "B"), default=0) >= 2, "checkpoint")
    assert code == 130, err
    assert "Traceback" not in err and "npvae train --resume" in err
    # The run stopped there: one checkpoint, of the epoch the message names,
    # and no temporary file of an interrupted write.
    assert sorted(p.suffix for p in (tmp_path / "B" / "checkpoints").iterdir()) == [".npz"]
    (epoch,) = saved_epochs(tmp_path / "B")
    assert epoch >= 2 and f"saved at epoch {epoch} " in err
    assert load_checkpoint(tmp_path / "B").n_iter_ == epoch


def test_kill_9_mid_training_resumes_bit_for_bit(tmp_path, capsys, no_figures):
    """SIGKILL at any moment (mid-epoch, mid-save) leaves the last whole
    checkpoint, from which the run continues as if never stopped."""
    signal_npvae(
        tmp_path, ["train", "--hidden", "8", "--epochs", "100000", "--out", tmp_path / "B"],
        lambda: max(saved_epochs(tmp_path / "B"), default=0) >= 2, "checkpoint",
        settle=0.05, sig=signal.SIGKILL)        # somewhere in the next epoch or its save
    epoch = max(saved_epochs(tmp_path / "B"))
    assert run(capsys, "train", "--resume", tmp_path / "B", "--epochs", str(epoch + 1))[0] == 0
    assert run(capsys, "train", "--hidden", "8", "--epochs", str(epoch + 1),
               "--out", tmp_path / "A")[0] == 0
    a, b = params_of(tmp_path / "A"), params_of(tmp_path / "B")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "B" / "checkpoints").iterdir()) == \
        [f"epoch-{epoch + 1:04d}.npz"]            # no temporary file of a killed save left


def test_python_m_npvae_help():
    result = subprocess.run([sys.executable, "-m", "npvae", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("train", "evaluate", "sample", "reconstruct", "interpolate", "gradcheck"):
        assert command in result.stdout


def test_the_command_imports_matplotlib_only_to_draw():
    # matplotlib's import is a third of `npvae --help`'s start-up time.
    code = "import sys, npvae.app.cli; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_help_returns_zero(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and "--kl-warmup" in out and "--resume" in out


def test_user_array_without_image_shape_skips_image_figures(tmp_path, capsys, monkeypatch):
    X = np.random.default_rng(0).random((50, 10)).astype(np.float32)
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", X)
    monkeypatch.chdir(tmp_path / "data")
    code, out, err = run(capsys, "train", "--dataset", "x.npy", *TINY, "--out", tmp_path / "r")
    assert code == 0, err
    assert "10 features are not an image" in err and "skipping" in err
    assert sorted(p.name for p in (tmp_path / "r" / "figures").iterdir()) == \
        ["latent.png", "loss.png"]
    monkeypatch.chdir(tmp_path)  # the run remembers where its data is
    assert run(capsys, "evaluate", "r", "--k", "2")[0] == 0
    assert_usage_error(run(capsys, "sample", "r"), "not an image")


def test_gaussian_run_starts_its_noise_variance_at_the_datas(tmp_path, capsys, no_figures):
    """Two epochs move log sigma^2 by at most ~0.03 from its start: from 1
    (log 0) it could not get near the digits' log 0.073 = -2.6."""
    code, out, err = run(capsys, "train", *TINY, "--likelihood", "gaussian",
                         "--out", tmp_path / "r")
    assert code == 0, err
    assert VAE.load(tmp_path / "r").obs_logvar_ < -2.0


def test_gaussian_likelihood_on_unscaled_csv(tmp_path, capsys):
    X = np.random.default_rng(0).normal(50, 10, (60, 16))
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    assert_usage_error(run(capsys, "train", "--dataset", tmp_path / "x.csv", *TINY,
                           "--out", tmp_path / "r"), "Bernoulli likelihood needs X in [0, 1]")
    assert_usage_error(run(capsys, "train", "--dataset", tmp_path / "x.csv", *TINY,
                           "--likelihood", "gaussian", "--binarize", "--out", tmp_path / "r"),
                       "binarize needs values in [0, 1]")
    assert not (tmp_path / "r").exists()
    code, out, err = run(capsys, "train", "--dataset", tmp_path / "x.csv", *TINY,
                         "--likelihood", "gaussian", "--out", tmp_path / "r")
    assert code == 0, err
    assert_png(tmp_path / "r" / "figures" / "samples.png")  # 16 = 4 x 4
    assert "drawing the 16 features as 4x4 images, a guess from their count" in err


def test_images_saved_as_three_d_array_keep_their_shape(tmp_path, capsys, monkeypatch):
    images = np.random.default_rng(0).random((60, 4, 6))
    np.save(tmp_path / "x.npy", images)
    shapes = []
    real = plots.plot_samples
    monkeypatch.setattr(plots, "plot_samples",
                        lambda X, shape, path, **kw: shapes.append(shape) or real(X, shape, path, **kw))
    code, out, err = run(capsys, "train", "--dataset", tmp_path / "x.npy", *TINY,
                         "--out", tmp_path / "r")
    assert code == 0, err
    assert shapes == [(4, 6)] and "a guess" not in err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["image_shape"] == [4, 6]


# ------------------------------------------------------------ the other verbs
def test_evaluate(trained, capsys):
    code, out, err = run(capsys, "evaluate", trained, "--k", "50")
    assert code == 0, err
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "359 examples" in out
    elbo = float(lines["ELBO"].split()[1])
    iwae = float(out.split("k=50")[1].split()[0])
    assert -100 < elbo < 0 and elbo < iwae < 0
    assert "active units" in out and " of 2 " in out
    # Repeatable with the same seed.
    again = run(capsys, "evaluate", trained, "--k", "50")[1]
    assert again.rsplit("(", 1)[0] == out.rsplit("(", 1)[0]  # all but the timing


def test_evaluate_gives_the_same_estimate_on_any_number_of_threads(trained, capsys,
                                                                   monkeypatch):
    asked = []

    def recording(*args, **kwargs):
        asked.append(kwargs["n_jobs"])
        return importance_weighted_log_likelihood(*args, **kwargs)

    monkeypatch.setattr(cli, "importance_weighted_log_likelihood", recording)
    outs = [run(capsys, "evaluate", trained, "--k", "300", *jobs) for jobs in
            ([], ["--jobs", "1"], ["--jobs", "2"])]
    assert all(code == 0 for code, _, _ in outs)
    assert asked == [-1, 1, 2]          # every core unless told
    iwae = {out.split("k=300")[1].split("(")[0] for _, out, _ in outs}
    assert len(iwae) == 1, iwae


def test_sigint_stops_an_evaluation_on_every_core(trained, tmp_path):
    # 359 images x 10^5 samples: half a minute of work or more, unless Ctrl-C stops it.
    code, err = signal_npvae(
        tmp_path, ["evaluate", trained, "--k", "100000", "--jobs", "2"],
        lambda: "active units" in (tmp_path / "stdout.txt").read_text(), "output",
        settle=0.5, timeout=30)             # settle: into the estimate
    assert code == 130, err
    assert "Traceback" not in err and "npvae: interrupted" in err
    assert "log p(x)" not in (tmp_path / "stdout.txt").read_text()


def test_evaluate_prints_what_the_library_computes(trained, capsys, monkeypatch):
    from npvae.app.datasets import load_dataset
    from npvae.models.evaluation import active_units, kl_per_dimension

    code, out, err = run(capsys, "evaluate", trained, "--k", "5", "--seed", "3")
    assert code == 0, err
    model, X = load_checkpoint(trained), load_dataset("digits").X_test
    log_px, kl = model.elbo_terms(X, random_state=3)
    numbers = out.split("ELBO")[1].replace("(", " ").replace(",", " ").replace(")", " ").split()
    elbo, recon, kl_shown = float(numbers[0]), float(numbers[3]), float(numbers[5])
    assert elbo == pytest.approx(np.mean(log_px - kl), abs=1e-3)
    assert recon == pytest.approx(-np.mean(log_px), abs=1e-3)
    assert kl_shown == pytest.approx(np.mean(kl), abs=1e-3)
    assert int(out.split("active units")[1].split()[0]) == active_units(model, X)
    per_dim = out.split("KL per dimension:")[1].split(")")[0].split()
    assert [float(v) for v in per_dim] == pytest.approx(kl_per_dimension(model, X), abs=5e-3)
    # Both units of this model are active; a stand-in count shows it is the one printed.
    monkeypatch.setattr(cli, "active_units_per_layer", lambda model, X, y=None: [1])
    assert "active units               1 of 2" in run(capsys, "evaluate", trained, "--k", "1")[1]


@pytest.mark.parametrize("verb, name, extra", [
    ("sample", "samples-seed3.png", ["--n", "25", "--seed", "3"]),
    ("reconstruct", "reconstructions-n10.png", ["--n", "10"]),
    ("interpolate", "interpolations-3x5.png", ["--pairs", "3", "--steps", "5"]),
])
def test_figure_verbs_print_the_path(copy_of, tmp_path, capsys, verb, name, extra):
    drawn_by_train = snapshot(copy_of / "figures")
    code, out, err = run(capsys, verb, copy_of, *extra)
    assert code == 0, err
    assert out == f"{copy_of / 'figures' / name}\n"
    assert_png(copy_of / "figures" / name)
    # The figures train drew are left as they were, under their own names.
    assert {k: v for k, v in snapshot(copy_of / "figures").items()
            if k.name != name} == drawn_by_train
    target = tmp_path / "elsewhere" / "f.png"
    code, out, _ = run(capsys, verb, copy_of / "checkpoints" / "epoch-0002.npz", *extra,
                       "--out", target)
    assert code == 0 and out == f"{target}\n"
    assert_png(target)


def test_every_option_has_help_that_shows_its_default():
    parser = cli._parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"train", "evaluate", "sample", "reconstruct",
                                     "interpolate", "gradcheck"}
    checked = 0
    for name, sub in commands.choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = formatter._get_help_string(action) if action.help else ""
            assert len(text) > 5, f"{name} {action.dest} has no help"
            if action.option_strings and action.nargs != 0:  # a flag is off by default
                assert "default" in text, f"{name} {action.option_strings} hides its default"
                checked += 1
    assert checked >= 30
    assert "--n N number of samples (default: 100)" in \
        " ".join(commands.choices["sample"].format_help().split())


@pytest.mark.parametrize("verb", ["sample", "reconstruct", "interpolate"])
def test_figure_verbs_refuse_a_folder_as_out(copy_of, tmp_path, capsys, verb):
    before = snapshot(tmp_path)
    assert_usage_error(run(capsys, verb, copy_of, "--out", tmp_path),
                       f"--out {tmp_path} is a folder; give the path of a PNG file")
    assert snapshot(tmp_path) == before


def test_gradcheck_passes_and_prints_the_table(capsys):
    code, out, _ = run(capsys, "gradcheck")
    assert code == 0
    assert "encoder.0.W" in out and "decoder.2.b" in out and "passed" in out
    code, out, _ = run(capsys, "gradcheck", "--likelihood", "gaussian", "--hidden", "none")
    assert code == 0 and "obs_logvar" in out
    # The threshold is printed as given, not rounded to one digit.
    code, out, _ = run(capsys, "gradcheck", "--threshold", "1.5e-6")
    assert code == 0 and "<= threshold 1.5e-06: passed" in out


def test_gradcheck_fails_on_a_planted_bug(capsys, monkeypatch):
    from npvae import losses
    real = losses.kl_standard_normal_backward
    monkeypatch.setattr(losses, "kl_standard_normal_backward",
                        lambda mu, logvar: tuple(1.01 * g for g in real(mu, logvar)))
    code, out, _ = run(capsys, "gradcheck")
    assert code == 1 and "FAILED" in out


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("argv, fragment", [
    (["train", "--epochs", "-1"], "argument --epochs: must be >= 1, got -1"),
    (["train", "--hidden", "abc"], "argument --hidden: expected comma-separated"),
    (["train", "--hidden", "0"], "argument --hidden"),
    (["train", "--lr", "0"], "argument --lr: must be a finite number > 0"),
    (["train", "--lr", "nan"], "argument --lr"),
    (["train", "--beta", "-1"], "argument --beta"),
    (["train", "--batch-size", "x"], "expected an integer, got 'x'"),
    (["train", "--activation", "swish"], "invalid choice: 'swish'"),
    (["train", "--dataset", "imagenet"], "unknown data set 'imagenet'"),
    (["train", "--dataset", "missing.npy"], "missing.npy: no such file"),
    (["train", "--unknown"], "unrecognized arguments: --unknown"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "required: COMMAND"),
    (["evaluate", "--k", "0", "x"], "argument --k"),
    (["evaluate", "x", "--jobs", "0"], "argument --jobs: must not be 0"),
    (["evaluate", "x", "--jobs", "1.5"], "argument --jobs: expected an integer"),
    (["evaluate", "no-such-run"], "no-such-run is not an npvae run folder"),
    (["gradcheck", "--threshold", "-1"], "argument --threshold"),
    (["train", "--hidden", str(10**30)], "argument --hidden: each width must be <= 100000"),
    (["train", "--hidden", "100000000000"], "each width must be <= 100000"),
    (["train", "--latent-dim", str(10**30)], "argument --latent-dim: must be <= 100000"),
    (["gradcheck", "--latent-dim", "10000000000000"], "must be <= 100000"),
    (["sample", "x", "--n", str(10**12)], "argument --n: must be <= 10000"),
    (["train", "--out", ""], "argument --out: must not be empty"),
    (["train", "--resume", " "], "argument --resume: must not be empty"),
    (["train", "--dataset", ""], "argument --dataset: must not be empty"),
    (["evaluate", ""], "argument RUN: must not be empty"),
])
def test_nonsense_options(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert_usage_error(run(capsys, *argv), fragment)
    assert list(tmp_path.iterdir()) == []


def test_existing_run_is_never_overwritten_without_force(copy_of, tmp_path, capsys, no_figures):
    before = snapshot(copy_of)
    assert_usage_error(run(capsys, "train", *TINY, "--out", copy_of),
                       "already exists; pass --force")
    # Bad input with --force fails before anything is removed.
    assert_usage_error(run(capsys, "train", "--dataset", "nope", "--out", copy_of, "--force"),
                       "unknown data set")
    assert snapshot(copy_of) == before
    code, _, _ = run(capsys, "train", *TINY, "--epochs", "1", "--out", copy_of, "--force")
    assert code == 0 and load_checkpoint(copy_of).n_iter_ == 1
    other = tmp_path / "home"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    assert_usage_error(run(capsys, "train", *TINY, "--out", other, "--force"),
                       "not an npvae run folder (no config.json", "refusing to replace it even")
    assert (other / "precious.txt").read_text() == "keep"


def test_resume_refuses_other_settings(copy_of, capsys):
    before = snapshot(copy_of)
    assert_usage_error(run(capsys, "train", "--resume", copy_of, "--lr", "0.1", "--hidden", "4"),
                       "not --hidden, --lr")
    assert_usage_error(run(capsys, "train", "--resume", copy_of, "--force"), "--force")
    assert snapshot(copy_of) == before


def test_resume_of_a_run_an_earlier_npvae_saved_is_bit_exact(trained, tmp_path, capsys,
                                                             no_figures):
    """A run folder whose checkpoint is the earlier .json + .npz pair resumes
    as the same run saved in one file does, and then holds one file."""
    earlier, current = tmp_path / "earlier", tmp_path / "current"
    shutil.copytree(trained, earlier)
    shutil.copytree(trained, current)
    as_earlier_pair(earlier / "checkpoints" / "epoch-0002.npz")
    stray = earlier / "checkpoints" / ".epoch-0002.json.abcd1234.tmp"
    stray.write_text("a killed write's leftover")
    assert run(capsys, "train", "--resume", earlier, "--epochs", "3")[0] == 0
    assert not stray.exists()
    assert run(capsys, "train", "--resume", current, "--epochs", "3")[0] == 0
    a, b = load_checkpoint(earlier), load_checkpoint(current)
    assert a.n_iter_ == b.n_iter_ == 3
    for name, p in a.params_.items():
        np.testing.assert_array_equal(p, b.params_[name], err_msg=name)
    assert sorted(p.name for p in (earlier / "checkpoints").iterdir()) == ["epoch-0003.npz"]
    assert (earlier / "metrics.csv").read_bytes() == (current / "metrics.csv").read_bytes()


def test_resume_refuses_a_checkpoint_saved_without_adam(copy_of, capsys):
    """Continuing with a fresh Adam would not be the run that was saved."""
    ckpt = copy_of / "checkpoints" / "epoch-0002"
    load_checkpoint(ckpt).save(ckpt, include_optimizer=False)
    before = snapshot(copy_of)
    assert_usage_error(run(capsys, "train", "--resume", copy_of, "--epochs", "3"),
                       "epoch-0002.npz: saved without Adam's state")
    assert snapshot(copy_of) == before
    assert run(capsys, "sample", copy_of, "--out", copy_of.parent / "s.png")[0] == 0


@pytest.mark.parametrize("damage, fragment", [
    ("version", "format version 99; this npvae reads versions 1 and 2"),
    ("architecture", "has shape (64, 16), the architecture needs (64, 8)"),
    ("tampered", "cannot be read safely"),
    ("pickled", "cannot be read safely"),
    ("truncated", "cannot be read safely"),
])
def test_bad_checkpoints(copy_of, tmp_path, capsys, damage, fragment, no_figures):
    npz = copy_of / "checkpoints" / "epoch-0002.npz"
    if damage == "version":
        rewrite_checkpoint(npz, meta=lambda m: m.update(format_version=99))
    elif damage == "architecture":
        assert run(capsys, "train", "--hidden", "16", "--epochs", "1",
                   "--out", tmp_path / "other")[0] == 0
        with np.load(tmp_path / "other" / "checkpoints" / "epoch-0001.npz") as f:
            other = {k: f[k] for k in f.files if k != "metadata"}
        rewrite_checkpoint(npz, arrays=lambda a: (a.clear(), a.update(other)))
    elif damage == "tampered":
        data = bytearray(npz.read_bytes())
        data[len(data) // 2] ^= 0xFF
        npz.write_bytes(bytes(data))
    elif damage == "pickled":
        np.savez(npz, **{"param/mu.b": np.array([object()] * 2)})
    else:
        npz.write_bytes(npz.read_bytes()[:100])
    before = snapshot(copy_of)
    for verb in ("evaluate", "sample"):
        assert_usage_error(run(capsys, verb, copy_of), fragment)
    assert_usage_error(run(capsys, "train", "--resume", copy_of, "--epochs", "3"), fragment)
    assert snapshot(copy_of) == before


# ------------------------------------------------------------ bad data files
def idx(array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x800 + array.ndim if magic is None else magic
    return gzip.compress(struct.pack(f">I{array.ndim}i", magic, *array.shape) + array.tobytes())


def fake_mnist(folder, damage=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(idx(images))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(idx(labels))
    target = folder / "train-images-idx3-ubyte.gz"
    if damage == "magic":
        target.write_bytes(idx(rng.integers(0, 256, (20, 28, 28)), magic=0x0801))
    elif damage == "size":
        raw = gzip.decompress(target.read_bytes())
        target.write_bytes(gzip.compress(raw[:-7]))
    elif damage == "corrupt":
        target.write_bytes(target.read_bytes()[:40])
    elif damage == "missing":
        target.unlink()


def test_fake_mnist_trains(tmp_path, capsys):
    fake_mnist(tmp_path / "data" / "mnist")
    code, out, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", tmp_path / "data",
                         *TINY, "--epochs", "1", "--out", tmp_path / "r")
    assert code == 0, err
    assert_png(tmp_path / "r" / "figures" / "samples.png")


@pytest.mark.parametrize("damage, fragment", [
    ("magic", "wrong IDX magic number 0x00000801"),
    ("size", "truncated"),
    ("corrupt", "cannot read"),
    ("missing", "missing train-images-idx3-ubyte.gz"),
])
def test_bad_data_files(tmp_path, capsys, damage, fragment):
    fake_mnist(tmp_path / "data" / "mnist", damage)
    before = snapshot(tmp_path / "data")
    assert_usage_error(run(capsys, "train", "--dataset", "mnist", "--data-dir",
                           tmp_path / "data", "--out", tmp_path / "r"), fragment)
    assert not (tmp_path / "r").exists()
    assert snapshot(tmp_path / "data") == before


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_checksum_mismatch(tmp_path, capsys, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "mirror"
    fake_mnist(served / "mnist")  # valid IDX files, but not the official ones
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("NPVAE_DATA_MIRROR", f"http://127.0.0.1:{httpd.server_port}")
        assert_usage_error(run(capsys, "train", "--dataset", "mnist", "--download",
                               "--data-dir", tmp_path / "data", "--out", tmp_path / "r"),
                           "md5", "expected f68b3c2dcbeaaa9fbdd348bbdeb94873")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert not (tmp_path / "r").exists()
    assert [p.name for p in (tmp_path / "data" / "mnist").iterdir()] == [".npvae-download.lock"]


@pytest.mark.filterwarnings("error")  # no RuntimeWarnings on the way either
def test_divergence_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, no_figures):
    assert_usage_error(run(capsys, "train", *TINY, "--lr", "1e30", "--out", tmp_path / "r"),
                       "training diverged at epoch 1")
    assert load_checkpoint(tmp_path / "r").n_iter_ == 0


def test_non_finite_user_array(tmp_path, capsys):
    X = np.random.default_rng(0).random((20, 4))
    X[3, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    assert_usage_error(run(capsys, "train", "--dataset", tmp_path / "x.npy",
                           "--out", tmp_path / "r"), "NaN")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(shutil.which("npvae") is None, reason="the package is not installed")
def test_installed_console_script_runs(tmp_path):
    result = subprocess.run(["npvae", "gradcheck"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "rel. error" in result.stdout and "decoder" in result.stdout


def test_iwae_and_mixture_prior_runs_train_resume_and_evaluate(tmp_path, capsys, monkeypatch):
    from npvae import IWAE
    from npvae.app.checkpoints import load_checkpoint
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])
    iwae, mixture = tmp_path / "iwae", tmp_path / "mixture"
    assert run(capsys, "train", *TINY, "--model", "iwae", "--k", "3", "--out", iwae)[0] == 0
    model = load_checkpoint(iwae)
    assert isinstance(model, IWAE) and model.k == 3
    assert run(capsys, "train", "--resume", iwae, "--epochs", "3")[0] == 0
    assert load_checkpoint(iwae).n_iter_ == 3
    code, out, _ = run(capsys, "evaluate", iwae, "--k", "10")
    assert code == 0 and "log p(x), IWAE k=10" in out
    assert run(capsys, "train", *TINY, "--prior", "mixture", "--components", "3",
               "--out", mixture)[0] == 0
    assert load_checkpoint(mixture).prior_.n_components == 3
    code, out, _ = run(capsys, "evaluate", mixture, "--k", "10")
    assert code == 0 and "KL sampled" in out
    both = tmp_path / "both"
    assert run(capsys, "train", *TINY, "--model", "iwae", "--k", "2", "--prior", "mixture",
               "--out", both)[0] == 0
    assert isinstance(load_checkpoint(both), IWAE) and load_checkpoint(both).prior == "mixture"


def test_gradient_estimator_trains_resumes_and_refuses_dreg_for_the_vae(tmp_path, capsys,
                                                                       monkeypatch):
    from npvae.app.checkpoints import load_checkpoint
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])
    dreg = tmp_path / "dreg"
    assert run(capsys, "train", *TINY, "--model", "iwae", "--k", "2",
               "--gradient-estimator", "dreg", "--out", dreg)[0] == 0
    assert json.loads((dreg / "config.json").read_text())["gradient_estimator"] == "dreg"
    assert run(capsys, "train", "--resume", dreg, "--epochs", "3")[0] == 0
    assert load_checkpoint(dreg).gradient_estimator == "dreg"
    assert run(capsys, "train", *TINY, "--gradient-estimator", "stl",
               "--out", tmp_path / "stl")[0] == 0
    code, _, err = run(capsys, "train", *TINY, "--gradient-estimator", "dreg",
                       "--out", tmp_path / "no")
    assert code == 2 and "gradient_estimator='dreg'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "no").exists()


# ------------------------------------------------------------ --conditional
@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """One tiny conditional digits run, with its figures."""
    out = tmp_path_factory.mktemp("runs") / "cond"
    assert cli.main(["train", "--conditional", *TINY, "--out", str(out)]) == 0
    return out


def test_conditional_run_trains_on_the_labels(conditional_run):
    from npvae import ConditionalVAE
    config = json.loads((conditional_run / "config.json").read_text())
    assert config["conditional"] is True
    model = load_checkpoint(conditional_run)
    assert isinstance(model, ConditionalVAE) and model.classes_.tolist() == list(range(10))
    # The validation row is the conditional ELBO with the validation labels.
    data = runs.load_splits(config)
    assert data.y_val is not None and data.y_val.shape == (data.X_val.shape[0],)
    log_px, kl = model.elbo_terms(data.X_val, data.y_val, random_state=0)
    with open(conditional_run / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["val_recon"]) == pytest.approx(-np.mean(log_px), rel=1e-6)
    assert float(last["val_kl"]) == pytest.approx(np.mean(kl), rel=1e-6)
    # No manifold: it decodes codes without a label (the interpolations stay within a class).
    figures = sorted(p.name for p in (conditional_run / "figures").iterdir())
    assert figures == ["interpolations.png", "latent.png", "loss.png", "reconstructions.png",
                       "samples.png"]
    for name in figures:
        assert_png(conditional_run / "figures" / name)


def test_conditional_resume_gives_the_same_bits_as_one_run(conditional_run, tmp_path, capsys,
                                                           no_figures):
    shutil.copytree(conditional_run, tmp_path / "B")
    code, out, err = run(capsys, "train", "--resume", tmp_path / "B", "--epochs", "3")
    assert code == 0 and "resuming" in out, err
    assert run(capsys, "train", "--conditional", *TINY, "--epochs", "3",
               "--out", tmp_path / "A")[0] == 0
    a, b = params_of(tmp_path / "A"), params_of(tmp_path / "B")
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert (tmp_path / "A" / "metrics.csv").read_bytes() == \
        (tmp_path / "B" / "metrics.csv").read_bytes()
    assert load_checkpoint(tmp_path / "B").classes_.tolist() == list(range(10))


def test_conditional_evaluate_uses_the_test_labels(conditional_run, capsys):
    code, out, err = run(capsys, "evaluate", conditional_run, "--seed", "3", "--k", "20")
    assert code == 0, err
    model = load_checkpoint(conditional_run)
    data = runs.load_splits(json.loads((conditional_run / "config.json").read_text()))
    log_px, kl = model.elbo_terms(data.X_test, data.y_test, random_state=3)
    assert f"ELBO of log p(x|y)    {np.mean(log_px - kl):10.3f} nats" in out
    units = int(np.sum(model.transform(data.X_test, data.y_test).var(axis=0) > 0.01))
    assert f"active units          {units:>6d} of 2" in out
    iw = importance_weighted_log_likelihood(model, data.X_test, k=20, random_state=3,
                                            y=data.y_test)
    assert f"log p(x|y), IWAE k=20   {np.mean(iw):10.3f} nats" in out
    # The bound with the labels, not without them.
    assert np.mean(iw) >= np.mean(log_px - kl) - 0.5


def test_conditional_sample_draws_one_row_per_class_or_one_label(conditional_run, tmp_path,
                                                                 capsys, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "plot_samples",
                        lambda samples, shape, path, ncols=None, **kw:
                        drawn.append((samples, ncols)) or path)
    model = load_checkpoint(conditional_run)
    code, out, err = run(capsys, "sample", conditional_run, "--seed", "4")
    assert code == 0 and out == f"{conditional_run / 'figures' / 'samples-seed4.png'}\n", err
    samples, ncols = drawn[-1]
    assert ncols == 10 and samples.shape == (100, 64)
    expected = model.sample(100, np.repeat(np.arange(10), 10), random_state=4)
    np.testing.assert_array_equal(samples, expected)
    code, out, err = run(capsys, "sample", conditional_run, "--label", "3", "--n", "16")
    assert code == 0 and out.endswith("samples-seed0-label3.png\n"), err
    np.testing.assert_array_equal(drawn[-1][0], model.sample(16, 3, random_state=0))
    assert not np.array_equal(drawn[-1][0], model.sample(16, 5, random_state=0))
    assert_usage_error(run(capsys, "sample", conditional_run, "--label", "11"),
                       "--label 11 is not a class of this run; its classes are 0, 1")


def test_conditional_reconstruct_uses_the_test_labels(conditional_run, capsys, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "plot_reconstructions",
                        lambda X, R, shape, path: drawn.append((X, R)) or path)
    code, out, err = run(capsys, "reconstruct", conditional_run, "--n", "7")
    assert code == 0 and out.endswith("reconstructions-n7.png\n"), err
    model = load_checkpoint(conditional_run)
    data = runs.load_splits(json.loads((conditional_run / "config.json").read_text()))
    X, y = data.X_test[:7], data.y_test[:7]
    np.testing.assert_array_equal(drawn[0][0], X)
    np.testing.assert_array_equal(drawn[0][1], model.decode(model.transform(X, y), y))


def test_label_is_refused_for_a_run_without_labels(trained, capsys):
    assert_usage_error(run(capsys, "sample", trained, "--label", "3"),
                       "--label is for conditional runs")


@pytest.mark.parametrize("argv, fragment", [
    (["--dataset", "frey-face"], "frey-face has none"),
    (["--dataset", "binarized-mnist"], "binarized-mnist has none"),
    (["--model", "iwae"], "it has no --model iwae"),
])
def test_conditional_refusals(tmp_path, capsys, argv, fragment):
    assert_usage_error(run(capsys, "train", "--conditional", *TINY, *argv,
                           "--out", tmp_path / "r"), fragment)
    assert not (tmp_path / "r").exists()


def test_gradcheck_refuses_a_conditional_iwae(capsys):
    assert_usage_error(run(capsys, "gradcheck", "--conditional", "--model", "iwae"),
                       "--conditional is a conditional VAE; it has no --model iwae")


def test_conditional_on_files_needs_labels(tmp_path, capsys, no_figures):
    from npvae import ConditionalVAE
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 16)), rng.integers(0, 3, 40)
    np.save(tmp_path / "x.npy", X)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    for name in ("x.npy", "x.csv"):
        assert_usage_error(run(capsys, "train", "--conditional", "--dataset", tmp_path / name,
                               *TINY, "--out", tmp_path / name.replace(".", "-")),
                           f"{name} has none")
        assert not (tmp_path / name.replace(".", "-")).exists()
    code, _, err = run(capsys, "train", "--conditional", "--prior", "mixture",
                       "--components", "3", "--dataset", tmp_path / "xy.npz", *TINY,
                       "--out", tmp_path / "xy")
    assert code == 0, err
    model = load_checkpoint(tmp_path / "xy")
    assert isinstance(model, ConditionalVAE) and model.classes_.tolist() == [0, 1, 2]
    assert model.prior_.n_components == 3


def test_a_config_without_the_conditional_key_trains_a_vae(trained, tmp_path, capsys,
                                                          no_figures):
    """Runs from before --conditional have no such key: they are VAE runs."""
    from npvae import ConditionalVAE
    config = json.loads((trained / "config.json").read_text())
    del config["conditional"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    code, out, err = run(capsys, "train", "--resume", tmp_path / "old")
    assert code == 0 and "training a VAE" in out, err
    model = load_checkpoint(tmp_path / "old")
    assert type(model) is VAE and not isinstance(model, ConditionalVAE)
    a, b = params_of(trained), params_of(tmp_path / "old")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_gradcheck_of_a_run_whose_data_has_moved_takes_data_dir(tmp_path, capsys):
    fake_mnist(tmp_path / "data" / "mnist")
    assert run(capsys, "train", "--dataset", "mnist", "--data-dir", tmp_path / "data", *TINY,
               "--out", tmp_path / "r")[0] == 0
    (tmp_path / "data").rename(tmp_path / "moved")
    code, out, err = run(capsys, "gradcheck", tmp_path / "r", "--samples", "3",
                         "--data-dir", tmp_path / "moved")
    assert code == 0 and "on its first 3 training rows" in out, err
    # A fresh model checks random rows: a data folder has nothing to do there.
    assert_usage_error(run(capsys, "gradcheck", "--data-dir", tmp_path / "moved"),
                       "--data-dir is for gradcheck RUN")
