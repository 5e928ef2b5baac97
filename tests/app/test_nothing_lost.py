"""Issue #21, "Nothing lost, round three", for the command: a resume deletes
only checkpoints npvae wrote, figures are never written through a symbolic
link, a run killed before its config.json can be replaced, a label missing
from the training split is refused before the disk is touched, and options
that would do nothing (or a typo) are refused."""
import shutil

import numpy as np
import pytest

import test_cli
import test_runs
from npvae.app import figures, runs
from npvae.models.saving import written_by_npvae
from test_cli import TINY, assert_usage_error, run, snapshot

# A copy of test_cli's tiny trained run, with its figures.
trained, copy_of = test_cli.trained, test_runs.copy_of


@pytest.fixture
def no_figures(monkeypatch):
    monkeypatch.setattr(figures, "draw_run_figures", lambda *args: [])


def test_resume_deletes_only_the_checkpoints_npvae_wrote(copy_of, capsys, no_figures):
    mine = {"epoch-notes.txt": "notes", "epoch-9999.json.bak": "{}", "epoch-1.npz.orig": "x"}
    for name, text in mine.items():
        (copy_of / "checkpoints" / name).write_text(text)
    code, out, err = run(capsys, "train", "--resume", copy_of, "--epochs", "3")
    assert code == 0, err
    names = sorted(p.name for p in (copy_of / "checkpoints").iterdir())
    assert names == sorted(["epoch-0003.npz", *mine])
    assert all((copy_of / "checkpoints" / n).read_text() == t for n, t in mine.items())


@pytest.mark.parametrize("verb", [["sample"], ["reconstruct"], ["interpolate"]])
def test_figures_are_never_written_through_a_symlinked_figures_folder(copy_of, tmp_path,
                                                                      capsys, verb):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "samples-seed0.png").write_bytes(b"mine")
    shutil.rmtree(copy_of / "figures")
    (copy_of / "figures").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    assert_usage_error(run(capsys, *verb, copy_of),
                       f"{copy_of / 'figures'} is a symbolic link")
    assert snapshot(elsewhere) == before


@pytest.mark.parametrize("verb", [["sample"], ["reconstruct"], ["interpolate"]])
def test_out_replaces_only_a_figure_npvae_drew(copy_of, tmp_path, capsys, verb):
    # Before: --out the run's own checkpoint replaced the trained model with a PNG.
    (checkpoint,) = (copy_of / "checkpoints").glob("*.npz")
    mine = tmp_path / "thesis.png"
    mine.write_bytes(b"\x89PNG mine")
    (tmp_path / "link.png").symlink_to(tmp_path / "elsewhere.png")
    before = snapshot(copy_of), mine.read_bytes()
    for target in (checkpoint, copy_of / "config.json", mine, tmp_path / "link.png"):
        assert_usage_error(run(capsys, *verb, copy_of, "--out", target),
                           f"--out {target} exists and is not a figure npvae drew")
    assert (snapshot(copy_of), mine.read_bytes()) == before
    assert not (tmp_path / "elsewhere.png").exists()
    # Its own figure, which says npvae drew it, it draws again.
    for _ in range(2):
        code, out, err = run(capsys, *verb, copy_of, "--out", tmp_path / "again.png")
        assert code == 0, err
    assert written_by_npvae(tmp_path / "again.png", "figure")


def test_a_resume_never_draws_through_a_symlinked_figures_folder(copy_of, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(copy_of / "figures")
    (copy_of / ".figures-epoch").unlink()
    (copy_of / "figures").symlink_to(elsewhere)
    code, out, err = run(capsys, "train", "--resume", copy_of)
    assert code == 2 and "is a symbolic link" in err
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("temp", [False, True])
def test_a_run_killed_before_its_config_json_can_be_replaced(tmp_path, capsys, monkeypatch,
                                                             no_figures, temp):
    out = tmp_path / "r"
    real = runs._write_json

    def killed(path, obj):   # the process dies where config.json is written
        if path.name == "config.json":
            if temp:   # ... in the middle of its atomic write
                (path.parent / ".config.json.abcd1234.tmp").write_text("{")
            raise KeyboardInterrupt
        return real(path, obj)
    monkeypatch.setattr(runs, "_write_json", killed)
    assert run(capsys, "train", *TINY, "--out", out)[0] == 130
    monkeypatch.setattr(runs, "_write_json", real)
    code, _, err = run(capsys, "train", *TINY, "--out", out)
    assert code == 2 and "--force" in err            # the advice given ...
    code, _, err = run(capsys, "train", *TINY, "--out", out, "--force")   # ... works
    assert code == 0, err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-0002.npz"]
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("split", ["validation", "test"])
def test_a_label_missing_from_the_training_split_is_refused_before_the_disk(tmp_path, capsys,
                                                                            split):
    rng = np.random.default_rng(0)
    X, path = rng.random((60, 16)), tmp_path / "data.npz"
    np.savez(path, X=X, y=np.arange(60))   # each row's label is its index: where does it go?
    data = runs.load_splits({"dataset": str(path), "seed": 0})
    row = (data.y_val if split == "validation" else data.y_test)[0]
    y = np.arange(60) % 3
    y[row] = 7   # a class of that split only, never trained on
    np.savez(path, X=X, y=y)
    out = tmp_path / "r"
    assert_usage_error(run(capsys, "train", "--dataset", path, "--conditional", *TINY,
                           "--out", out),
                       f"the label 7 is in the {split} split but not in the training split")
    assert not out.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--k", "3"], "--k is for --model iwae only; the model here is vae"),
    (["--components", "3"], "--components is for --prior mixture only"),
    (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    (["--epoch", "3"], "unrecognized arguments: --epoch 3"),
    (["--latent-dim", "1000000"], "argument --latent-dim: must be <= 100000"),
    (["--components", "1000000", "--prior", "mixture"], "argument --components: must be <="),
    (["--k", "1000000", "--model", "iwae"], "argument --k: must be <= 100000"),
])
def test_options_that_do_nothing_typos_and_huge_sizes_are_refused(tmp_path, capsys,
                                                                  argv, fragment):
    out = tmp_path / "r"
    assert_usage_error(run(capsys, "train", *TINY, *argv, "--out", out), fragment)
    assert not out.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["sample", "--n", "1000000"], "argument --n: must be <= 10000"),
    (["sample", "--se", "3"], "unrecognized arguments: --se "),
    (["evaluate", "--see", "3"], "unrecognized arguments: --see "),
])
def test_figure_sizes_are_bounded_and_abbreviations_refused_everywhere(copy_of, capsys,
                                                                       argv, fragment):
    assert_usage_error(run(capsys, *argv, copy_of), fragment)
