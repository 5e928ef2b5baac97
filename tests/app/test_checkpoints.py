"""Tests of npvae.models.saving, npvae.app.checkpoints and the models'
save/load: bit-exact round trips, resumed training, checkpoints of the
earlier two-file format, and refusal of every kind of bad checkpoint."""
import ast
import errno
import json
import os
import pickle
import re
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import npvae.models
from npvae import VAE, Autoencoder
from npvae.models import saving
from npvae.models.base import FLAT
from conftest import as_earlier_pair, metadata_of, rewrite_checkpoint
from npvae.app.checkpoints import FORMAT_VERSION, latest_checkpoint, load_checkpoint, save_checkpoint

RNG = np.random.default_rng(0)
X = RNG.random((40, 12)).astype(np.float32)


def fitted(cls=VAE, **kw):
    params = dict(latent_dim=3, hidden_dims=(8,), epochs=2, batch_size=16, random_state=0)
    params.update(kw)
    return cls(**params).fit(X)


def same_params(a, b):
    return a.params_.keys() == b.params_.keys() and all(
        np.array_equal(a.params_[k], b.params_[k]) for k in a.params_)


@pytest.mark.parametrize("cls, kw", [
    (VAE, {}),
    (VAE, {"likelihood": "gaussian", "dtype": "float64"}),  # learned obs_logvar
    (Autoencoder, {"likelihood": "gaussian", "obs_var": 0.5}),
])
def test_round_trip_is_bit_exact_and_training_continues_identically(tmp_path, cls, kw):
    model = fitted(cls, **kw)
    path = model.save(tmp_path / "ckpt")
    assert path == tmp_path / "ckpt.npz" and [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
    loaded = cls.load(tmp_path / "ckpt.npz")
    assert type(loaded) is cls and loaded.get_params() == model.get_params()
    assert same_params(model, loaded)
    assert loaded.n_iter_ == 2 and loaded.history_ == model.history_
    assert loaded.optimizer_.t == model.optimizer_.t
    assert np.array_equal(loaded.transform(X), model.transform(X))
    assert np.array_equal(loaded.score_samples(X), model.score_samples(X))
    if kw.get("likelihood") == "gaussian" and "obs_var" not in kw:
        assert loaded.obs_logvar_ == model.obs_logvar_ != 0.0
    # Same Adam moments and random generator: one more epoch stays identical.
    model.fit_epoch(X)
    loaded.fit_epoch(X)
    assert same_params(model, loaded)


@pytest.mark.parametrize("cls, kw", [
    (VAE, {}),
    (VAE, {"likelihood": "gaussian", "dtype": "float64"}),  # learned obs_logvar
    (Autoencoder, {}),
])
def test_a_model_saved_without_adam_predicts_the_same_from_a_third_of_the_bytes(
        tmp_path, cls, kw):
    model = fitted(cls, hidden_dims=(64,), **kw)
    model.save(tmp_path / "full")
    model.save(tmp_path / "lean", include_optimizer=False)
    lean_bytes = (tmp_path / "lean.npz").stat().st_size
    assert lean_bytes < 0.4 * (tmp_path / "full.npz").stat().st_size
    assert metadata_of(tmp_path / "lean.npz")["optimizer"] is None
    with np.load(tmp_path / "lean.npz") as f:
        assert sorted(f.files) == sorted([f"param/{k}" for k in model.params_] + ["metadata"])
    loaded = cls.load(tmp_path / "lean")
    assert same_params(model, loaded) and loaded.history_ == model.history_
    assert np.array_equal(loaded.transform(X), model.transform(X))
    assert np.array_equal(loaded.score_samples(X), model.score_samples(X))
    # Training goes on with a fresh Adam built from the hyper-parameters.
    assert loaded.optimizer_.t == 0 and model.optimizer_.t > 0
    assert loaded.optimizer_.eps == model.epsilon
    loaded.fit_epoch(X)
    assert loaded.optimizer_.t > 0 and np.isfinite(loaded.score_samples(X)).all()


def test_a_checkpoint_without_adam_is_refused_where_training_must_continue(tmp_path):
    fitted().save(tmp_path / "lean", include_optimizer=False)
    with pytest.raises(ValueError, match=r"lean\.npz: saved without Adam's state"):
        load_checkpoint(tmp_path / "lean", require_optimizer=True)
    fitted().save(tmp_path / "full")
    assert load_checkpoint(tmp_path / "full", require_optimizer=True).optimizer_.t > 0


def test_adam_arrays_beside_a_null_optimizer_are_refused(tmp_path):
    """A checkpoint whose metadata says no Adam state was saved, but which
    holds it, describes neither."""
    fitted().save(tmp_path / "c")
    rewrite_checkpoint(tmp_path / "c.npz", meta=lambda m: m.update(optimizer=None))
    with pytest.raises(ValueError, match=r"arrays do not match .* unexpected \["):
        load_checkpoint(tmp_path / "c")


def test_adam_stepped_by_name_saves_like_adam_on_the_vector(tmp_path):
    """optimizer_.step(params_, grads) by hand keeps moments per name, the
    training loop one vector: both must save the same per-name arrays, and
    a loaded model continues from either exactly as the loop would."""
    by_vector, by_name = fitted(), fitted()
    eps = np.random.default_rng(5).standard_normal((len(X), 3)).astype(np.float32)
    by_vector.loss_and_grads(X, eps)                 # fills the gradient vector
    by_vector.optimizer_.step({FLAT: by_vector.parameters_.theta}, {FLAT: by_vector.parameters_.grad})
    _, grads = by_name.loss_and_grads(X, eps)
    by_name.optimizer_.m = by_name.parameters_.views(by_name.optimizer_.m[FLAT].copy())
    by_name.optimizer_.v = by_name.parameters_.views(by_name.optimizer_.v[FLAT].copy())
    by_name.optimizer_.step(by_name.params_, grads)
    assert same_params(by_vector, by_name)
    by_vector.save(tmp_path / "vector")
    by_name.save(tmp_path / "name")
    with np.load(tmp_path / "vector.npz") as a, np.load(tmp_path / "name.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_unfitted_but_initialised_model_round_trips(tmp_path):
    model = VAE(latent_dim=2, hidden_dims=(), random_state=1).initialize(12)
    model.save(tmp_path / "c")
    loaded = VAE.load(tmp_path / "c.json")
    assert loaded.optimizer_.t == 0 and loaded.n_iter_ == 0
    model.fit_epoch(X)
    loaded.fit_epoch(X)
    assert same_params(model, loaded)


def test_generator_random_state_is_stored_as_null(tmp_path):
    model = fitted(random_state=np.random.default_rng(3))
    meta = metadata_of(model.save(tmp_path / "c"))
    assert meta["params"]["random_state"] is None
    assert same_params(VAE.load(tmp_path / "c"), model)


@pytest.mark.parametrize("seed, stored", [(np.int64(3), 3), ([1, 2, 3], [1, 2, 3]),
                                          (np.array([4, 5]), [4, 5]), ((6, 7), [6, 7])])
def test_every_integer_seed_is_stored_and_refits_the_same(tmp_path, seed, stored):
    model = fitted(random_state=seed)
    meta = metadata_of(model.save(tmp_path / "c"))
    assert meta["params"]["random_state"] == stored
    loaded = VAE.load(tmp_path / "c")
    assert same_params(loaded, model)
    assert same_params(loaded.fit(X), fitted(random_state=seed))


def test_extra_data_and_latest_checkpoint_of_a_run_folder(tmp_path):
    model = fitted()
    (tmp_path / "checkpoints").mkdir()
    save_checkpoint(model, tmp_path / "checkpoints" / "epoch-0009", extra={"a": [1]})
    model.fit_epoch(X)
    save_checkpoint(model, tmp_path / "checkpoints" / "epoch-0010", extra={"a": [2]})
    assert latest_checkpoint(tmp_path).name == "epoch-0010.npz"  # by number, not text
    loaded, extra = load_checkpoint(tmp_path, return_extra=True)
    assert extra == {"a": [2]} and loaded.n_iter_ == 3
    assert same_params(VAE.load(tmp_path), model)


def test_the_models_do_not_import_the_app():
    """Checkpoints import the model classes, not the other way round."""
    for path in Path(npvae.models.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {(n.level, n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {(0, a.name) for n in ast.walk(tree) if isinstance(n, ast.Import)
                     for a in n.names}
        assert imported, path
        assert not any("app" in (m or "").split(".") or (level == 2 and m is None)
                       for level, m in imported), path


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_load_model_returns_any_npvae_estimator(tmp_path, cls):
    model = fitted(cls)
    model.save(tmp_path / "m")
    loaded = load_checkpoint(tmp_path / "m")
    assert type(loaded) is cls and same_params(loaded, model)
    loaded, extra = load_checkpoint(tmp_path / "m.npz", return_extra=True)
    assert extra == {} and same_params(loaded, model)


def test_load_checks_the_class(tmp_path):
    fitted(Autoencoder).save(tmp_path / "ae")
    with pytest.raises(TypeError, match="holds a Autoencoder, not a VAE"):
        VAE.load(tmp_path / "ae")


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    fitted().save(tmp_path / "c")
    (tmp_path / "c.npz").unlink()
    with pytest.raises(FileNotFoundError, match="c.npz"):
        load_checkpoint(tmp_path / "c.json")


# ------------------------------------------------------------ bad checkpoints
def edit_meta(path, change):
    rewrite_checkpoint(path, meta=change)


@pytest.fixture
def ckpt(tmp_path):
    model = fitted(likelihood="gaussian")
    model.save(tmp_path / "c")
    return tmp_path, model


def test_other_format_version_is_refused(ckpt):
    tmp_path, _ = ckpt
    edit_meta(tmp_path / "c.npz", lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="format version 3; this npvae reads versions 1 and 2"):
        load_checkpoint(tmp_path / "c")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format="something"), "not an npvae checkpoint"),
    (lambda m: m.update({"class": "PCA"}), "unknown class 'PCA'"),
    (lambda m: m["params"].update(bogus=1), "malformed metadata"),
    (lambda m: m.pop("rng_state"), "malformed metadata"),
    (lambda m: m["rng_state"].update(bit_generator="MT19937"), "random generator 'MT19937'"),
])
def test_malformed_metadata_is_refused(ckpt, change, message):
    tmp_path, _ = ckpt
    edit_meta(tmp_path / "c.npz", change)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path / "c")


def test_not_json(ckpt):
    tmp_path, _ = ckpt
    rewrite_checkpoint(tmp_path / "c.npz", text="{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path / "c")


def test_checkpoint_of_another_architecture_is_refused(ckpt):
    tmp_path, _ = ckpt
    other = fitted(hidden_dims=(8, 8), likelihood="gaussian").save(tmp_path / "other")
    take_arrays(other, tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"do not match a VAE with hidden_dims=\(8,\).*"
                                         r"missing \[\], unexpected \['decoder.4.W', "
                                         r"'decoder.4.b', 'encoder.2.W'"):
        load_checkpoint(tmp_path / "c")


def test_shape_mismatch_is_refused(ckpt):
    tmp_path, _ = ckpt
    other = fitted(latent_dim=4, likelihood="gaussian").save(tmp_path / "other")
    take_arrays(other, tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"has shape \(8, 4\), the architecture needs \(8, 3\)"):
        load_checkpoint(tmp_path / "c")


def take_arrays(source, target):
    """Put the arrays of checkpoint ``source`` into ``target`` beside its metadata."""
    with np.load(source) as f:
        arrays = {k: f[k] for k in f.files if k != "metadata"}

    def replace(stored):
        stored.clear()
        stored.update(arrays)
    rewrite_checkpoint(target, arrays=replace)


def rewrite_npz(tmp_path, change):
    rewrite_checkpoint(tmp_path / "c.npz", arrays=change)


def zip_with(path, member, flags=None, method=None):
    """Rewrite the zip ``path`` with the headers of ``member`` (its local one
    and its central directory entry) changed: their general-purpose
    ``flags`` or compression ``method``."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(member).header_offset
    central = data.index(b"PK\x01\x02")   # the first entry
    while data[central + 46:central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    for value, at in ((flags, 6), (method, 8)):
        if value is not None:
            data[local + at:local + at + 2] = struct.pack("<H", value)
            data[central + at + 2:central + at + 4] = struct.pack("<H", value)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
     "cannot be read safely .*BadZipFile"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b"\x93NUMPY", b"\x93NUMPX", 1)),
     "cannot be read safely .*BadZipFile: Bad CRC-32"),
    (lambda p: zip_with(p, "param/mu.b.npy", method=99),
     "cannot be read safely .*NotImplementedError"),
    (lambda p: zip_with(p, "param/mu.b.npy", flags=1),
     "cannot be read safely .*(RuntimeError|BadZipFile)"),
    (lambda p: rewrite_npz(p.parent, lambda a: None) or _add_member(p, "notes.npy", b"text"),
     "member 'notes' is not an array"),
], ids=["truncated", "bad CRC", "unknown compression", "encrypted flag", "not an array"])
def test_a_corrupt_checkpoint_file_is_refused_naming_it(ckpt, damage, message):
    tmp_path, _ = ckpt
    damage(tmp_path / "c.npz")
    with pytest.raises(ValueError, match=f"checkpoint {re.escape(str(tmp_path / 'c.npz'))}: "
                                         f"{message}"):
        load_checkpoint(tmp_path / "c")


def _add_member(path, name, data):
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(name, data)


def test_an_edited_array_is_refused_by_the_zip_checksum(ckpt):
    """One byte of a parameter changed in place, leaving the archive's CRC."""
    tmp_path, _ = ckpt
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("param/mu.b.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + info.compress_size - 1] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Bad CRC-32"):
        load_checkpoint(tmp_path / "c")


@pytest.mark.parametrize("change, message", [
    (lambda a: a.__setitem__("param/mu.b", a["param/mu.b"].astype(np.float64)),
     "'param/mu.b' is float64, the model's dtype is float32"),
    (lambda a: a["param/mu.b"].__setitem__(0, np.nan), "'param/mu.b' has NaN"),
    (lambda a: a.__setitem__("param/obs_logvar", np.array(np.inf, np.float32)),
     "'param/obs_logvar' has NaN or infinite"),
    (lambda a: a.__setitem__("param/mu.b", np.array([{}, 1, 2], dtype=object)),
     "cannot be read safely.*allow_pickle=False"),
])
def test_bad_arrays_are_refused(ckpt, change, message):
    tmp_path, _ = ckpt
    rewrite_npz(tmp_path, change)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path / "c")


@pytest.mark.parametrize("payload, message", [
    (pickle.dumps({"param/mu.b": np.zeros(3)}), "cannot be read safely.*pickled"),
    (b"not a zip file at all", "cannot be read safely"),
    (None, "not an .npz archive"),
])
def test_pickles_and_non_archives_are_refused(ckpt, payload, message):
    tmp_path, _ = ckpt
    if payload is None:
        with open(tmp_path / "c.npz", "wb") as f:
            np.save(f, np.zeros(3))
    else:
        (tmp_path / "c.npz").write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path / "c")


# ------------------------------------------------------------ atomic writes
def test_a_save_killed_midway_leaves_the_last_good_checkpoint(ckpt, monkeypatch):
    tmp_path, model = ckpt
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    model.fit_epoch(X)

    def dies_midway(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(saving.np, "savez", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "c")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files
    assert load_checkpoint(tmp_path / "c").n_iter_ == 2



def test_save_replaces_only_an_npvae_checkpoint(tmp_path):
    model = fitted()
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"my own data")
    (tmp_path / "link.npz").symlink_to(mine)
    for target in (mine, tmp_path / "link.npz"):
        with pytest.raises(FileExistsError, match=f"cannot save {target}: it exists and is not "
                                                  "an npvae checkpoint"):
            model.save(target)
    assert mine.read_bytes() == b"my own data" and (tmp_path / "link.npz").is_symlink()
    np.savez(tmp_path / "arrays.npz", a=np.zeros(2))          # an .npz, but not npvae's
    with pytest.raises(FileExistsError, match="not an npvae checkpoint"):
        model.save(tmp_path / "arrays.npz")
    # Its own checkpoints, of this format and of the earlier one, it replaces.
    model.save(tmp_path / "ours")
    model.fit_epoch(X)
    assert load_checkpoint(model.save(tmp_path / "ours")).n_iter_ == 3
    as_earlier_pair(tmp_path / "ours.npz")
    assert saving.written_by_npvae(tmp_path / "ours.npz", "checkpoint")
    assert not saving.written_by_npvae(tmp_path / "ours.npz", "figure")


def test_save_refuses_settings_a_load_would_refuse(tmp_path):
    # Before: the checkpoint was written, and its load failed on k = 0.
    model = fitted(npvae.IWAE, k=2).set_params(k=0)
    with pytest.raises(ValueError, match="IWAE.k == 0, must be >= 1"):
        model.save(tmp_path / "m")
    assert not any(tmp_path.iterdir())


def test_a_model_loaded_without_adam_saves_without_adam_again(tmp_path):
    """Its fresh Adam (t = 0) is not the state training had: saving it by
    default must not make a checkpoint that claims to continue the run."""
    fitted().save(tmp_path / "lean", include_optimizer=False)
    load_checkpoint(tmp_path / "lean").save(tmp_path / "again")
    assert metadata_of(tmp_path / "again.npz")["optimizer"] is None
    with pytest.raises(ValueError, match="saved without Adam's state"):
        load_checkpoint(tmp_path / "again", require_optimizer=True)
    with pytest.raises(TypeError, match="include_optimizer must be True or False, got 'no'"):
        fitted().save(tmp_path / "x", include_optimizer="no")
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   KeyboardInterrupt()])
def test_a_save_failing_at_its_rename_keeps_the_last_good_checkpoint(
        ckpt, monkeypatch, error):
    tmp_path, model = ckpt
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    model.fit_epoch(X)
    calls = []

    def fails(src, dst):
        calls.append(Path(dst).name)
        raise error

    monkeypatch.setattr(saving.os, "replace", fails)
    with pytest.raises(type(error)):
        model.save(tmp_path / "c")
    monkeypatch.undo()
    assert calls == ["c.npz"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files
    assert load_checkpoint(tmp_path / "c").n_iter_ == 2


def test_atomic_write_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def fails(f):
        f.write(b"new, partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        saving.atomic_write(target, fails)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    saving.atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


# ------------------------------------------------------------ saving over a checkpoint
@pytest.fixture
def good(tmp_path):
    fitted().save(tmp_path / "good")
    return tmp_path / "good"


def test_numpy_scalar_hyper_parameters_save_as_python_values(good):
    model = fitted(latent_dim=np.int64(2), learning_rate=np.float32(1e-3),
                   hidden_dims=np.array([8]), beta=np.float64(0.5), verbose=np.bool_(False))
    meta = metadata_of(model.save(good))
    assert meta["params"]["latent_dim"] == 2 and type(meta["params"]["latent_dim"]) is int
    assert meta["params"]["hidden_dims"] == [8] and meta["params"]["verbose"] is False
    loaded = VAE.load(good)
    assert same_params(loaded, model) and loaded.get_params() == model.get_params()


def test_grid_search_best_estimator_saves(tmp_path):
    from sklearn.model_selection import GridSearchCV
    search = GridSearchCV(VAE(hidden_dims=(8,), epochs=1, batch_size=16, random_state=0),
                          {"latent_dim": np.arange(2, 4)}, cv=2).fit(X)
    assert isinstance(search.best_estimator_.latent_dim, np.integer)
    search.best_estimator_.save(tmp_path / "best")
    assert same_params(VAE.load(tmp_path / "best"), search.best_estimator_)


def test_a_hyper_parameter_json_cannot_hold_fails_before_anything_is_written(good):
    before = {p.name: p.read_bytes() for p in good.parent.iterdir()}
    model = fitted(hidden_dims=range(8, 9))     # array-like, but not JSON
    with pytest.raises(TypeError, match=r"good.npz: hyper-parameter hidden_dims=range\(8, 9\) "
                                        "cannot be stored as JSON"):
        model.save(good)
    assert {p.name: p.read_bytes() for p in good.parent.iterdir()} == before
    assert VAE.load(good).n_iter_ == 2


def test_a_save_failing_in_json_keeps_the_last_good_checkpoint(good, monkeypatch):
    def fails(*args, **kwargs):
        raise ValueError("injected")

    before = {p.name: p.read_bytes() for p in good.parent.iterdir()}
    monkeypatch.setattr(saving.json, "dumps", fails)
    with pytest.raises((TypeError, ValueError)):
        fitted(latent_dim=2, random_state=1).save(good)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in good.parent.iterdir()} == before
    assert VAE.load(good).n_iter_ == 2


# ------------------------------------------------------------ checkpoint names
def test_a_dotted_name_keeps_its_dots(tmp_path):
    a, b = fitted(beta=0.5), fitted(beta=0.25)
    assert a.save(tmp_path / "vae_beta0.5") == tmp_path / "vae_beta0.5.npz"
    b.save(tmp_path / "vae_beta0.25")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae_beta0.25.npz", "vae_beta0.5.npz"]
    assert VAE.load(tmp_path / "vae_beta0.5").beta == 0.5
    assert VAE.load(tmp_path / "vae_beta0.25.npz").beta == 0.25
    assert VAE.load(tmp_path / "vae_beta0.5.json").beta == 0.5


def test_a_checkpoint_of_an_older_npvae_loads_by_its_name_and_is_not_guessed(tmp_path):
    """Older npvae saved "vae_beta0.5" as vae_beta0.json/.npz: that file loads
    by its own name, and "vae_beta0.5" points to it instead of loading it
    (a "vae_beta0.25" may have been saved over it)."""
    fitted(beta=0.5).save(tmp_path / "vae_beta0")
    assert VAE.load(tmp_path / "vae_beta0").beta == 0.5
    with pytest.raises(FileNotFoundError, match=r"vae_beta0\.5\.npz does not exist; .*"
                                                r"vae_beta0\.npz may be the one"):
        VAE.load(tmp_path / "vae_beta0.5")


def test_a_name_of_both_a_run_folder_and_a_checkpoint_is_refused(tmp_path):
    run_model, file_model = fitted(), fitted(random_state=1)
    (tmp_path / "myrun" / "checkpoints").mkdir(parents=True)
    save_checkpoint(run_model, tmp_path / "myrun" / "checkpoints" / "epoch-0002")
    file_model.save(tmp_path / "myrun")
    with pytest.raises(ValueError, match=r"myrun names both a run folder and the "
                                         r"checkpoint .*myrun\.npz: pass"):
        VAE.load(tmp_path / "myrun")
    assert same_params(VAE.load(tmp_path / "myrun.json"), file_model)
    assert same_params(VAE.load(tmp_path / "myrun" / "checkpoints" / "epoch-0002.npz"),
                       run_model)


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_a_name_without_a_stem_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="is not a checkpoint name"):
        fitted().save(name)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ tampered metadata
@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """A VAE fitted for 2 epochs on the digits, saved once; tests edit copies."""
    from sklearn.datasets import load_digits
    X_digits = (load_digits().data / 16).astype(np.float32)
    folder = tmp_path_factory.mktemp("digits")
    VAE(hidden_dims=(8,), epochs=2, random_state=0).fit(X_digits).save(folder / "c")
    return folder


def set_key(key, value):
    """An edit of the metadata: ``key`` ("a.b", or a tuple of keys and
    indices) set to ``value``, or removed."""
    def change(meta):
        *outer, last = key.split(".") if isinstance(key, str) else key
        for k in outer:
            meta = meta[k]
        if value is _REMOVE:
            del meta[last]
        else:
            meta[last] = value
    return change


_REMOVE = object()
_NESTED = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("change, message", [
    (set_key("rng_state", [1, 2, 3]), "'rng_state' must be a random generator's state"),
    (set_key("rng_state.state.state", 1.5), "'rng_state' is not the state of a PCG64"),
    (set_key("rng_state.state.inc", -1), "'rng_state' is not a valid PCG64 state"),
    (set_key("rng_state.uinteger", 2 ** 40), "'rng_state' is not a valid PCG64 state"),
    (set_key("extra", None), "'extra' must be an object, got None"),
    (set_key("optimizer.t", 10 ** 400), r"'optimizer.t' must be an integer in \[0, 2\*\*53\]"),
    (set_key("optimizer.t", -5), r"'optimizer.t' must be an integer in \[0, 2\*\*53\], got -5"),
    (set_key("optimizer.t", float("nan")), r"'optimizer.t' must be an integer .*, got nan"),
    (set_key("optimizer.t", 28.0), r"'optimizer.t' must be an integer"),
    (set_key("optimizer.eps", "x"), "'optimizer.eps' must be a finite number, got 'x'"),
    (set_key("optimizer.beta1", 1.5), r"'optimizer': beta1 must be in \[0, 1\)"),
    (set_key("optimizer", "Adam"), "'optimizer' must be an object or null, got 'Adam'"),
    (set_key("params", "abc"), "'params' must be an object, got 'abc'"),
    (set_key("params.beta", _REMOVE), r"'params' is missing \['beta'\]"),
    (set_key("params.batch_size", _REMOVE), r"'params' is missing \['batch_size'\]"),
    (set_key("params.latent_dim", 0), "'params' and 'n_features_in_' do not build a VAE: VAE.latent_dim == 0, must be >= 1"),
    (set_key("params.hidden_dims", "abc"), "'params' and 'n_features_in_' do not build a VAE: VAE.hidden_dims must be an int or a sequence"),
    (set_key("extra.metrics", "abc"), "'extra.metrics' must be a list of 2 rows"),
    (set_key("extra.metrics", [{"epoch": 1, "val_loss": 3.0}, {"epoch": 1}]),
     "'extra.metrics\\[1\\].epoch' must be 2, got 1"),
    (set_key("extra.metrics", [{"epoch": 1}, {"epoch": 2, "val_loss": "junk"}]),
     "'extra.metrics\\[1\\].val_loss' must be a finite number, got 'junk'"),
    (set_key("history_", "abc"), "'history_' must be a list of 2 rows"),
    (set_key(("history_", 0, "loss"), float("nan")), r"'history_\[0\].loss' must be a finite number, "
                                                "got nan"),
    (set_key(("history_", 1, "kl"), float("inf")), r"'history_\[1\].kl' must be a finite number"),
    (set_key("n_iter_", -1), "'n_iter_' must be an integer >= 0, got -1"),
    (set_key("n_iter_", 3), "'history_' must be a list of 3 rows"),
    (set_key("n_features_in_", True), "'n_features_in_' must be an integer >= 1, got True"),
    (set_key("class", 5), "unknown class 5"),
    (set_key("class", ["VAE"]), r"unknown class \['VAE'\]"),
    (set_key("history_", _REMOVE), "malformed metadata: missing 'history_'"),
    (_NESTED, "not valid JSON \\(nested too deeply\\)"),
    ("[1, 2]", "not an npvae checkpoint"),
    ('{"a": NaN', "not valid JSON"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_tampered_metadata_is_refused_naming_the_file_and_the_key(
        digits_checkpoint, tmp_path, change, message):
    shutil.copy(digits_checkpoint / "c.npz", tmp_path / "c.npz")
    if isinstance(change, str):
        rewrite_checkpoint(tmp_path / "c.npz", text=change)
    else:
        edit_meta(tmp_path / "c.npz", change)
    with pytest.raises(ValueError, match=f"checkpoint {re.escape(str(tmp_path / 'c.npz'))}: "
                                         f".*{message}"):
        load_checkpoint(tmp_path / "c", return_extra=True)


# ------------------------------------------------------------ full disks
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_a_full_disk_names_the_file_and_keeps_the_last_checkpoint(good, monkeypatch, code):
    before = {p.name: p.read_bytes() for p in good.parent.iterdir()}

    def disk_full(fd):
        raise OSError(code, os.strerror(code))       # as the kernel reports it: no file name

    monkeypatch.setattr(saving.os, "fsync", disk_full)
    with pytest.raises(OSError) as info:
        fitted(random_state=1).save(good)
    monkeypatch.undo()
    assert info.value.errno == code and info.value.filename == str(good) + ".npz"
    assert f"{os.strerror(code)}: '{good}.npz'" in str(info.value)
    assert {p.name: p.read_bytes() for p in good.parent.iterdir()} == before
    assert VAE.load(good).n_iter_ == 2


def test_a_failed_rename_names_the_target_not_the_temporary_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        saving.atomic_write(tmp_path / "d", lambda f: f.write(b"x"))
    assert info.value.filename == str(tmp_path / "d") and ".tmp" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


@pytest.mark.parametrize("extra, message", [
    (5, "'extra' must be an object, got 5"),
    ({"metrics": "abc"}, "'extra.metrics' must be a list of 2 rows"),
    ({"metrics": [{"epoch": 1}, {"epoch": 2, "val_loss": float("nan")}]},
     r"'extra.metrics\[1\].val_loss' must be a finite number, got nan"),
])
def test_extra_that_could_not_load_is_not_saved(good, extra, message):
    before = {p.name: p.read_bytes() for p in good.parent.iterdir()}
    with pytest.raises(ValueError, match=message):
        save_checkpoint(fitted(), good, extra=extra)
    assert {p.name: p.read_bytes() for p in good.parent.iterdir()} == before


def test_a_run_folder_given_as_dot_loads_its_latest_checkpoint(tmp_path, monkeypatch):
    model = fitted()
    (tmp_path / "checkpoints").mkdir()
    save_checkpoint(model, tmp_path / "checkpoints" / "epoch-0002")
    monkeypatch.chdir(tmp_path)
    assert same_params(load_checkpoint("."), model)
    monkeypatch.chdir(tmp_path / "checkpoints")
    assert same_params(load_checkpoint(".."), model)


def test_a_checkpoint_from_before_the_adam_and_bias_settings_loads_with_their_defaults(tmp_path):
    model = fitted()
    path = model.save(tmp_path / "old")
    as_earlier_pair(path)
    json_path = path.with_suffix(".json")
    meta = json.loads(json_path.read_text())
    for key in ("beta_1", "beta_2", "epsilon", "output_bias_init", "gradient_estimator"):
        del meta["params"][key]
    json_path.write_text(json.dumps(meta))
    loaded = VAE.load(tmp_path / "old")
    assert loaded.get_params() == model.get_params()
    assert same_params(model, loaded)
    del meta["params"]["beta"]                     # an older key is still required
    json_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"'params' is missing \['beta'\]"):
        VAE.load(tmp_path / "old")


# ------------------------------------------------------------ the earlier .json + .npz pair
@pytest.mark.parametrize("cls, kw", [(VAE, {}), (Autoencoder, {}),
                                     (VAE, {"likelihood": "gaussian", "dtype": "float64"})])
def test_a_checkpoint_of_the_earlier_pair_loads_bit_for_bit(tmp_path, cls, kw):
    model = fitted(cls, **kw)
    json_path = as_earlier_pair(model.save(tmp_path / "c", include_optimizer=True))
    for name in ("c", "c.json", "c.npz"):
        loaded, extra = load_checkpoint(tmp_path / name, return_extra=True,
                                        require_optimizer=True)
        assert type(loaded) is cls and same_params(loaded, model) and extra == {}
        assert loaded.history_ == model.history_ and loaded.optimizer_.t == model.optimizer_.t
    assert json_path.name == "c.json"
    # Its training continues as the model's would.
    model.fit_epoch(X)
    loaded.fit_epoch(X)
    assert same_params(model, loaded)
    # Saved again under its name: one file, which loads instead of the stale .json.
    loaded.save(tmp_path / "c")
    assert load_checkpoint(tmp_path / "c").n_iter_ == 3


def test_an_earlier_pair_whose_arrays_changed_is_refused(tmp_path):
    as_earlier_pair(fitted().save(tmp_path / "c"))
    with np.load(tmp_path / "c.npz") as f:
        arrays = dict(f)
    arrays["param/mu.b"][0] += 1
    np.savez(tmp_path / "c.npz", **arrays)
    with pytest.raises(ValueError, match=r"c\.npz: its SHA-256 does not match the one in c\.json"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"c\.npz does not exist"):
        load_checkpoint(tmp_path / "c.json")


def test_a_run_folder_of_earlier_pairs_loads_its_latest(tmp_path):
    model = fitted()
    (tmp_path / "checkpoints").mkdir()
    as_earlier_pair(save_checkpoint(model, tmp_path / "checkpoints" / "epoch-0002"))
    assert latest_checkpoint(tmp_path).stem == "epoch-0002"
    assert same_params(VAE.load(tmp_path), model)


def test_a_metadata_edit_in_place_is_refused(tmp_path):
    """Issue 21's case: "activation": "relu" changed to "tanh" would load a
    model that silently computes something else; in one file, the archive's
    CRC of the metadata member refuses it."""
    path = fitted(activation="relu").save(tmp_path / "c")
    data = path.read_bytes()
    assert data.count(b'"activation": "relu"') == 1
    path.write_bytes(data.replace(b'"activation": "relu"', b'"activation": "tanh"'))
    with pytest.raises(ValueError, match=rf"checkpoint {re.escape(str(path))}: cannot be "
                                         r"read safely \(BadZipFile: Bad CRC-32"):
        load_checkpoint(path)
