"""Run folders under faults, races and hostile folders: --force replaces
only npvae's own runs, a lock keeps two processes apart, a resume completes
what a crash left out, and a bad config.json is named."""
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from npvae import VAE, Autoencoder, TwoLayerVAE
from npvae.app import figures, locks, runs
from npvae.app.checkpoints import load_checkpoint, save_checkpoint
from npvae.app.datasets import DataError, load_dataset, train_val_split
from test_cli import TINY, assert_usage_error, params_of, run, snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny digits run (without figures) shared by these tests."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    real, figures.draw_run_figures = figures.draw_run_figures, lambda *args: []
    try:
        assert runs.create(dict(_config(), epochs=2), out) == 0
    finally:
        figures.draw_run_figures = real
    return out


def _config():
    return {"dataset": "digits", "data_dir": None, "binarize": False, "seed": 0,
            "latent_dim": 2, "hidden_dims": [8], "activation": "relu",
            "likelihood": "bernoulli", "beta": 1.0, "kl_warmup": 0.0, "batch_size": 128,
            "learning_rate": 1e-3, "dtype": "float32"}


@pytest.fixture
def copy_of(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


@pytest.fixture
def drawn(monkeypatch):
    """Record the figures folders drawn into, instead of drawing them."""
    calls = []
    monkeypatch.setattr(figures, "draw_run_figures",
                        lambda model, folder, *args: calls.append((folder, model.n_iter_)) or [])
    return calls


# ------------------------------------------------------------ --force
def test_force_never_replaces_a_folder_npvae_did_not_write(tmp_path, capsys, drawn):
    p = tmp_path / "p"
    (p / "src").mkdir(parents=True)
    (p / "config.json").write_text('{"app": 1}')
    (p / "src" / "a.py").write_text("x")
    before = snapshot(p)
    assert_usage_error(run(capsys, "train", *TINY, "--out", p, "--force"),
                       "is not an npvae run folder", "refusing to replace it even with --force")
    assert snapshot(p) == before


def test_force_refuses_a_run_folder_holding_a_foreign_file(copy_of, capsys, drawn):
    (copy_of / "notes.txt").write_text("mine")
    (copy_of / "figures").mkdir(exist_ok=True)
    (copy_of / "figures" / "thesis.pdf").write_text("mine too")
    before = snapshot(copy_of)
    assert_usage_error(run(capsys, "train", *TINY, "--out", copy_of, "--force"),
                       "is not an npvae run folder", "is not npvae's")
    assert snapshot(copy_of) == before


@pytest.mark.parametrize("out, cwd", [(".", ""), ("..", "figures")])
def test_force_never_replaces_the_working_folder_or_a_parent(copy_of, capsys, monkeypatch,
                                                             drawn, out, cwd):
    (copy_of / "figures").mkdir(exist_ok=True)
    before = snapshot(copy_of)
    monkeypatch.chdir(copy_of / cwd)
    assert_usage_error(run(capsys, "train", *TINY, "--out", out, "--force"),
                       "is the working folder or one of its parents")
    assert snapshot(copy_of) == before


def test_an_empty_working_folder_is_not_a_run_folder_either(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for force in ([], ["--force"]):
        assert_usage_error(run(capsys, "train", *TINY, "--out", ".", *force),
                           "is the working folder")
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_an_npvae_run(copy_of, capsys, drawn):
    (copy_of / "figures").mkdir(exist_ok=True)
    (copy_of / "figures" / "samples.png").write_bytes(b"old")
    assert run(capsys, "train", *TINY, "--epochs", "1", "--out", copy_of, "--force")[0] == 0
    assert load_checkpoint(copy_of).n_iter_ == 1
    assert not (copy_of / "figures" / "samples.png").exists()


# ------------------------------------------------------------ the lock
def hold_lock(folder):
    fd = os.open(folder / ".npvae.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_locked_run_is_left_alone(copy_of, capsys, drawn):
    fd = hold_lock(copy_of)
    try:
        before = snapshot(copy_of)
        for argv in (["train", "--resume", copy_of, "--epochs", "3"],
                     ["train", *TINY, "--out", copy_of, "--force"]):
            assert_usage_error(run(capsys, *argv), f"{copy_of} is in use by another npvae")
        assert snapshot(copy_of) == before
    finally:
        os.close(fd)
    assert run(capsys, "train", "--resume", copy_of, "--epochs", "3")[0] == 0


def test_a_symlink_in_place_of_the_run_lock_is_refused(copy_of, tmp_path, capsys, drawn):
    """A planted link must not make npvae create (or lock) a file where it points."""
    target = tmp_path / "elsewhere" / "created-by-npvae"
    target.parent.mkdir()
    (copy_of / ".npvae.lock").unlink(missing_ok=True)
    (copy_of / ".npvae.lock").symlink_to(target)
    before = snapshot(copy_of)
    assert_usage_error(run(capsys, "train", "--resume", copy_of, "--epochs", "3"),
                       f"{copy_of / '.npvae.lock'} is a symbolic link, not npvae's lock file")
    assert_usage_error(run(capsys, "train", *TINY, "--out", copy_of, "--force"),
                       f"{copy_of / '.npvae.lock'} is not npvae's")
    assert not target.exists() and snapshot(copy_of) == before
    with pytest.raises(ValueError, match="is a symbolic link"):
        with runs.lock(copy_of):
            pass
    assert not target.exists()


@pytest.fixture
def others_lock(copy_of, monkeypatch):
    """The run's lock file, read-only and another user's (chmod 0444).  Root,
    whom no mode stops, as these tests run here, is refused an open for
    writing the way the kernel refuses another user (os.open patched)."""
    lock = copy_of / ".npvae.lock"
    lock.touch()
    lock.chmod(0o444)
    if os.geteuid() == 0:
        real_open = os.open

        def open_as_another_user(path, flags, *args, **kwargs):
            if os.path.abspath(path) == str(lock) and flags & (os.O_WRONLY | os.O_RDWR):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(path, flags, *args, **kwargs)
        monkeypatch.setattr(os, "open", open_as_another_user)
    yield lock
    lock.chmod(0o644)


def test_a_lock_file_this_user_cannot_write_is_named(others_lock, copy_of, capsys, drawn):
    # Before: "[Errno 13] Permission denied: '.../.npvae.lock'", with no word of what to do.
    before = snapshot(copy_of)
    for argv in (["train", "--resume", copy_of, "--epochs", "3"],
                 ["train", *TINY, "--out", copy_of, "--force"]):
        assert_usage_error(run(capsys, *argv), f"{others_lock} cannot be opened for writing "
                           "by this user", "chmod a+w", "or use another folder")
    assert snapshot(copy_of) == before and not drawn
    with pytest.raises(ValueError, match="cannot be opened for writing by this user"):
        with runs.lock(copy_of):
            pass
    with pytest.raises(DataError, match="cannot be opened for writing by this user"):
        with locks.hold_lock(others_lock, on_busy=None, error=DataError):
            pass


def test_a_killed_holder_leaves_no_stale_lock(copy_of, capsys, drawn):
    code = (f"import fcntl, os, sys, time; fd = os.open({str(copy_of / '.npvae.lock')!r}, "
            "os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); print('locked', "
            "flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "locked\n"
        assert_usage_error(run(capsys, "train", "--resume", copy_of, "--epochs", "3"), "in use")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert run(capsys, "train", "--resume", copy_of, "--epochs", "3")[0] == 0
    assert load_checkpoint(copy_of).n_iter_ == 3


def test_a_run_created_meanwhile_by_another_process_is_not_deleted(trained, tmp_path, capsys,
                                                                  monkeypatch, drawn):
    out = tmp_path / "cn"
    real = runs.load_splits

    def other_process_wins(*args, **kwargs):
        shutil.copytree(trained, out)  # while this one loads its data
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "load_splits", other_process_wins)
    assert_usage_error(run(capsys, "train", *TINY, "--seed", "2", "--out", out),
                       f"{out} already exists")
    assert snapshot(out) == snapshot(trained)


def test_default_folders_of_concurrent_runs_are_numbered(tmp_path, capsys, monkeypatch, drawn):
    monkeypatch.chdir(tmp_path)
    real = runs.load_splits

    def other_process_takes_the_name(*args, **kwargs):
        (tmp_path / "runs" / "digits-vae").mkdir(parents=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "load_splits", other_process_takes_the_name)
    code, out, err = run(capsys, "train", *TINY, "--epochs", "1")
    assert code == 0, err
    assert "into runs/digits-vae-2" in out
    assert list((tmp_path / "runs" / "digits-vae").iterdir()) == []


# ------------------------------------------------------------ crashes
def test_resume_completes_a_finished_run_that_a_crash_cut_short(copy_of, capsys, drawn):
    full = (copy_of / "metrics.csv").read_text()
    # Killed after the last checkpoint, before metrics.csv and the figures.
    (copy_of / "metrics.csv").write_text("".join(full.splitlines(True)[:2]))
    (copy_of / ".figures-epoch").unlink(missing_ok=True)
    code, out, err = run(capsys, "train", "--resume", copy_of)
    assert code == 0, err
    assert "completing its metrics.csv and figures" in out
    assert (copy_of / "metrics.csv").read_text() == full
    assert drawn == [(copy_of / "figures", 2)]
    before = snapshot(copy_of)
    code, out, _ = run(capsys, "train", "--resume", copy_of)
    assert code == 0 and "already trained 2 epochs" in out and len(drawn) == 1
    assert snapshot(copy_of) == before


def test_ctrl_c_while_drawing_says_how_to_finish(copy_of, capsys, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "draw_run_figures", interrupted)
    code, out, err = run(capsys, "train", "--resume", copy_of, "--epochs", "3")
    assert code == 130
    assert "interrupted while drawing the figures" in err
    assert f"npvae train --resume {copy_of}" in err
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])
    code, out, _ = run(capsys, "train", "--resume", copy_of)
    assert code == 0 and "completing its figures" in out


def test_leftover_temporary_files_of_npvae_are_removed(copy_of, capsys, drawn):
    ours = [copy_of / ".config.json.k2j_x9aq.tmp", copy_of / ".metrics.csv.abcdefgh.tmp",
            copy_of / "checkpoints" / ".epoch-0003.npz.z0z0z0z0.tmp"]
    theirs = [copy_of / "notes.tmp", copy_of / ".draft.txt.abcdefgh.tmp",
              copy_of / "checkpoints" / ".epoch-0003.npz.tmp"]
    for path in ours + theirs:
        path.write_text("x")
    assert run(capsys, "train", "--resume", copy_of, "--epochs", "3")[0] == 0
    assert not any(p.exists() for p in ours)
    assert all(p.read_text() == "x" for p in theirs)


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(trained, copy_of, capsys,
                                                                 drawn):
    for path in (copy_of / "checkpoints").iterdir():
        path.unlink()
    (copy_of / "metrics.csv").unlink()
    code, out, err = run(capsys, "train", *TINY, "--out", copy_of)
    assert code == 2 and f"--resume {copy_of}" in err  # the advice given ...
    code, out, err = run(capsys, "train", "--resume", copy_of)  # ... works
    assert code == 0, err
    assert "starting it from epoch 0" in out
    a, b = params_of(trained), params_of(copy_of)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (trained / "metrics.csv").read_bytes() == (copy_of / "metrics.csv").read_bytes()


def test_an_existing_file_as_out_gets_advice_that_works(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    for force in ([], ["--force"]):
        code, out, err = run(capsys, "train", *TINY, "--out", tmp_path / "f", *force)
        assert_usage_error((code, out, err), "exists and is not a folder; choose another --out")
        assert "pass --force" not in err
    assert (tmp_path / "f").read_text() == "mine"


# ------------------------------------------------------------ odd run folders
def _holding(run_dir, model):
    """``run_dir`` with ``model`` (fitted on digits) as its only checkpoint."""
    model.fit(load_dataset("digits").X_train[:50])
    for path in (run_dir / "checkpoints").iterdir():
        path.unlink()
    save_checkpoint(model, run_dir / "checkpoints" / f"epoch-{model.n_iter_:04d}")
    return run_dir


@pytest.fixture
def autoencoder_run(copy_of):
    X = load_dataset("digits").X_train
    ae = Autoencoder(latent_dim=2, hidden_dims=(8,), epochs=2, random_state=0).fit(X)
    for path in (copy_of / "checkpoints").iterdir():
        path.unlink()
    metrics = [{"epoch": h["epoch"], "train_loss": h["loss"], "train_recon": h["recon"]}
               for h in ae.history_]
    save_checkpoint(ae, copy_of / "checkpoints" / "epoch-0002", extra={"metrics": metrics})
    return copy_of


def test_a_run_folder_holding_an_autoencoder(autoencoder_run, capsys):
    code, out, err = run(capsys, "evaluate", autoencoder_run)
    assert code == 0, err
    ae = load_checkpoint(autoencoder_run)
    recon = -np.mean(ae.score_samples(load_dataset("digits").X_test))
    assert f"{recon:.3f} nats" in out and "no prior" in out
    assert_usage_error(run(capsys, "sample", autoencoder_run), "Autoencoder", "no prior")
    assert_usage_error(run(capsys, "train", "--resume", autoencoder_run, "--epochs", "3"),
                       "holds an Autoencoder, not a VAE")
    code, out, err = run(capsys, "reconstruct", autoencoder_run, "--out",
                         autoencoder_run / "r.png")
    assert code == 0, err
    # Before: "Invalid parameter 'gradient_estimator' for estimator Autoencoder(...)".
    code, out, err = run(capsys, "gradcheck", autoencoder_run)
    assert code == 0 and "an Autoencoder 64-8-2, cast to float64" in out and "passed" in out, err


@pytest.mark.parametrize("seed", ["abc", -5, 1.5, True, None])
def test_a_bad_seed_in_config_json_is_named(copy_of, capsys, seed):
    path = copy_of / "config.json"
    config = json.loads(path.read_text())
    config["seed"] = seed
    path.write_text(json.dumps(config))
    for argv in (["evaluate", copy_of, "--k", "1"], ["train", "--resume", copy_of]):
        assert_usage_error(run(capsys, *argv), f"{path}: 'seed' must be an integer >= 0, "
                           f"got {seed!r}")


@pytest.mark.parametrize("stochastic_layers", [1, 2])
@pytest.mark.parametrize("latent_dim", ["50", 5.0, True])
def test_a_latent_dim_not_an_integer_is_named_as_written(copy_of, capsys, latent_dim,
                                                         stochastic_layers):
    # Before, for two layers: "latent_dims must be an integer >= 1, got '5050'" (z1 = 2 z2).
    path = copy_of / "config.json"
    config = {**json.loads(path.read_text()), "latent_dim": latent_dim,
              "stochastic_layers": stochastic_layers}
    path.write_text(json.dumps(config))
    assert_usage_error(run(capsys, "evaluate", copy_of, "--k", "1"),
                       f"{path}: 'latent_dim' must be an integer, got {latent_dim!r}")


@pytest.mark.parametrize("change, message", [
    ({"latent_dim": 0}, "latent_dim == 0, must be >= 1"),
    ({"activation": "nope"}, "activation must be one of"),
    ({"learning_rate": -1}, "learning_rate == -1, must be > 0"),
    ({"model": "iwae", "k": 0}, "k == 0, must be >= 1"),
    ({"model": "iwae"}, "missing k"),
    ({"gradient_estimator": "x"}, "gradient_estimator must be one of"),
])
def test_a_bad_model_setting_in_config_json_is_named_by_the_model(copy_of, capsys, change,
                                                                  message):
    # The model's hyper-parameters are checked by the estimator itself.
    path = copy_of / "config.json"
    config = json.loads(path.read_text())
    config.pop("k", None)
    path.write_text(json.dumps({**config, **change}))
    assert_usage_error(run(capsys, "evaluate", copy_of, "--k", "1"), f"{path}: ", message)


@pytest.mark.parametrize("change, field, said, held", [
    ({"latent_dim": 3}, "latent_dim", "3", "latent_dim 2"),
    ({"hidden_dims": [4]}, "hidden_dims", "[4]", "hidden_dims [8]"),
    ({"model": "iwae", "k": 5}, "model", "'iwae'", "model 'vae'"),
    ({"gradient_estimator": "stl"}, "gradient_estimator", "'stl'", "gradient_estimator 'standard'"),
    ({"stochastic_layers": 2}, "stochastic_layers", "2", "stochastic_layers 1"),
    ({"conditional": True}, "conditional", "True", "conditional False"),
    ({"seed": 1}, "seed", "1", "random_state 0"),
    ({"learning_rate": 0.5}, "learning_rate", "0.5", "learning_rate 0.001"),
])
def test_a_config_json_that_contradicts_its_checkpoint_is_named(copy_of, capsys, change,
                                                                field, said, held):
    # Before: the checkpoint won silently, and the run was not what config.json said.
    path = copy_of / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    before = snapshot(copy_of)
    for argv in (["evaluate", copy_of, "--k", "1"], ["sample", copy_of],
                 ["reconstruct", copy_of], ["interpolate", copy_of], ["gradcheck", copy_of],
                 ["train", "--resume", copy_of, "--epochs", "3"]):
        assert_usage_error(run(capsys, *argv), f"{path}: {field} {said} contradicts the "
                           f"run's checkpoint", f"trained with {held}: fix config.json")
    assert snapshot(copy_of) == before


def _holding_two_layers(run_dir, latent_dims, hidden_dims, **params):
    """``run_dir`` holding a TwoLayerVAE as its only checkpoint (:func:`_holding`), with
    ``(path, contents)`` of its config.json saying two layers, written."""
    _holding(run_dir, TwoLayerVAE(latent_dims, hidden_dims=hidden_dims, activation="relu",
                                  batch_size=128, epochs=2, random_state=0, **params))
    path = run_dir / "config.json"
    config = {**json.loads(path.read_text()), "stochastic_layers": 2}
    path.write_text(json.dumps(config))
    return path, config


def test_a_config_json_that_contradicts_a_two_layer_checkpoint_is_named(copy_of, capsys):
    path, config = _holding_two_layers(copy_of, (4, 2), ((8,), (4,)))
    code, out, err = run(capsys, "evaluate", copy_of, "--k", "1")  # the layout it scales to
    assert code == 0, err
    path.write_text(json.dumps({**config, "latent_dim": 3}))
    assert_usage_error(run(capsys, "evaluate", copy_of, "--k", "1"),
                       "latent_dim 3 contradicts", "trained with latent_dim 2")


def test_a_run_folder_holding_a_two_layer_vae_of_several_codes_opens(copy_of, capsys):
    # npvae train writes "k": 5 into every config.json, and builds a VAE of one code per row
    # from it; a TwoLayerVAE saved with k=3 was refused ("k 5 contradicts ..., trained with
    # k 3"), and config.json's k 3 gave "k 3 contradicts ..., trained with k 3".
    path, config = _holding_two_layers(copy_of, (4, 2), ((8,), (4,)), k=3)
    for k in (5, 3):
        path.write_text(json.dumps({**config, "k": k}))
        code, out, err = run(capsys, "sample", copy_of)
        assert code == 0, err


@pytest.mark.parametrize("random_state", [None, np.random.default_rng(0), [1, 2]])
def test_a_run_folder_holding_a_model_saved_without_an_integer_seed_opens(copy_of, capsys,
                                                                          random_state):
    # Before: "seed 0 contradicts the run's checkpoint, trained with random_state None: fix
    # config.json", which no fix could satisfy: config.json's seed is an integer.
    _holding(copy_of, VAE(2, hidden_dims=(8,), activation="relu", batch_size=128, epochs=2,
                          random_state=random_state))
    for argv in (["evaluate", copy_of, "--k", "1"], ["sample", copy_of]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err


def test_a_run_folder_holding_a_model_saved_with_an_int_hidden_dims_opens(copy_of, capsys):
    # Before: "hidden_dims [8] contradicts the run's checkpoint, trained with hidden_dims 8",
    # the same network, and config.json's hidden_dims can only be a list.
    _holding(copy_of, VAE(2, hidden_dims=8, activation="relu", batch_size=128, epochs=2,
                          random_state=0))
    for argv in (["evaluate", copy_of, "--k", "1"], ["sample", copy_of]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
    path = copy_of / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "hidden_dims": [9]}))
    assert_usage_error(run(capsys, "sample", copy_of), "hidden_dims [9] contradicts",
                       "trained with hidden_dims [8]")


@pytest.mark.parametrize("key", ["binarize", "n_features"])
def test_a_config_json_without_an_optional_key_opens(copy_of, capsys, drawn, key):
    # Before: read_config takes a config.json without binarize or n_features (optional),
    # then train --resume stopped on KeyError: 'binarize' and the figures on 'n_features'.
    path = copy_of / "config.json"
    config = json.loads(path.read_text())
    del config[key]
    path.write_text(json.dumps(config))
    for argv in (["sample", copy_of], ["reconstruct", copy_of], ["interpolate", copy_of],
                 ["train", "--resume", copy_of, "--epochs", "3"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
    assert load_checkpoint(copy_of).n_iter_ == 3


def test_a_run_folder_holding_a_two_layer_model_of_its_own_layout_opens(copy_of, capsys):
    # config.json says z2's width (latent_dim) and the widths below z1 (hidden_dims); npvae
    # train derives the rest. Before, a model saved with z1 not twice z2, or other widths
    # below z2, was refused: "latent_dim 2 contradicts ..., trained with latent_dims [5, 2]".
    path, config = _holding_two_layers(copy_of, (5, 2), ((8,), (3,)))
    for argv in (["evaluate", copy_of, "--k", "1"], ["sample", copy_of]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
    for change, said, held in (({"latent_dim": 3}, "latent_dim 3", "latent_dim 2"),
                               ({"hidden_dims": [3]}, "hidden_dims [3]", "hidden_dims [8]")):
        path.write_text(json.dumps({**config, **change}))
        assert_usage_error(run(capsys, "sample", copy_of), f"{said} contradicts",
                           f"trained with {held}")


def test_resume_of_a_checkpoint_saved_without_metrics_is_refused_before_it_trains(copy_of,
                                                                                capsys):
    # Before: a model saved by model.save() into a run folder trained a whole epoch, then
    # its checkpoint was refused ("'extra.metrics' must be a list of 3 rows"), the epoch
    # lost, with config.json already saying 3 epochs.
    _holding(copy_of, VAE(2, hidden_dims=(8,), activation="relu", batch_size=128, epochs=2,
                          random_state=0))
    before = snapshot(copy_of)
    assert_usage_error(run(capsys, "train", "--resume", copy_of, "--epochs", "3"),
                       "checkpoint holds no metrics of its 2 epochs", "cannot continue it")
    assert snapshot(copy_of) == before


def test_a_config_json_saved_with_a_byte_order_mark_opens(copy_of, capsys, drawn):
    # Before: config.json edited (epochs 3) and saved by an editor that writes UTF-8 with a
    # BOM (Windows Notepad) was "not valid JSON (Unexpected UTF-8 BOM ...)".
    path = copy_of / "config.json"
    config = {**json.loads(path.read_text()), "epochs": 3, "note": "entraîné"}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(config, ensure_ascii=False).encode())
    code, out, err = run(capsys, "train", "--resume", copy_of)
    assert code == 0, err
    assert load_checkpoint(copy_of).n_iter_ == 3


def test_a_config_json_that_is_not_an_object_is_named(copy_of, capsys):
    (copy_of / "config.json").write_text("[1, 2]")
    assert_usage_error(run(capsys, "evaluate", copy_of), "config.json: not an npvae run config")


def test_load_splits_keeps_each_rows_label():
    """The labels are split with their rows, by the permutation the splits
    always had (a run from before the labels were kept splits as it did)."""
    config = _config()
    data, ds = runs.load_splits(config), load_dataset("digits")
    split_seed = np.random.SeedSequence(config["seed"]).spawn(3)[0]
    idx_tr, idx_val, _, _ = train_val_split(
        np.arange(ds.X_train.shape[0]), None, runs.VAL_FRACTION,
        np.random.default_rng(split_seed))
    np.testing.assert_array_equal(data.X_train, ds.X_train[idx_tr])
    np.testing.assert_array_equal(data.y_train, ds.y_train[idx_tr])
    np.testing.assert_array_equal(data.X_val, ds.X_train[idx_val])
    np.testing.assert_array_equal(data.y_val, ds.y_train[idx_val])
    np.testing.assert_array_equal(data.y_test, ds.y_test)
    assert data.image_shape == (8, 8)


def test_new_model_builds_what_the_config_says():
    from npvae import IWAE, ConditionalVAE
    config = dict(_config(), epochs=1)
    assert type(runs.new_model(config)) is VAE       # no "conditional" key: a VAE
    assert type(runs.new_model(dict(config, conditional=False))) is VAE
    assert type(runs.new_model(dict(config, conditional=True))) is ConditionalVAE
    assert type(runs.new_model(dict(config, model="iwae", k=2))) is IWAE


def test_resume_never_reads_or_deletes_through_a_symlinked_checkpoints_folder(copy_of, tmp_path,
                                                                              capsys, drawn):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(copy_of / "checkpoints", elsewhere)
    (elsewhere / "epoch-notes.txt").write_text("mine")
    (copy_of / "checkpoints").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    assert_usage_error(run(capsys, "train", "--resume", copy_of, "--epochs", "3"),
                       f"{copy_of / 'checkpoints'} is a symbolic link")
    assert snapshot(elsewhere) == before
