"""The benchmark scripts run, and what they count is what the step does.

Their numbers are speeds, which no test asserts; these tests keep the
scripts working and check the parts that could be wrong without being
slow: the list of matrix products behind the roofline, the verdict against
the targets, the files they write.
"""
import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

import npvae.models
from npvae import VAE
from npvae.app import cli, runs
from npvae.app.checkpoints import load_checkpoint
from npvae.models.evaluation import importance_weighted_log_likelihood
from npvae.core.layers import Dense

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
throughput = importlib.import_module("throughput")
scaling = importlib.import_module("scaling")
revisions = importlib.import_module("revisions")
quality = importlib.import_module("quality")
step_floor = importlib.import_module("step_floor")
evaluation_benchmark = importlib.import_module("evaluation")


def step_flops(monkeypatch, n_features, hidden, latent, batch):
    """Multiply-add FLOPs of the matrix products one training step makes,
    recorded from the Dense layers' operand shapes as they run."""
    flops = []
    forward, backward = Dense.forward, Dense.backward

    def counting_forward(self, x):
        flops.append(2 * x.shape[0] * x.shape[1] * self.params["W"].shape[1])
        return forward(self, x)

    def counting_backward(self, grad_out, input_grad=True):
        n, (fan_in, fan_out) = grad_out.shape[0], self.params["W"].shape
        flops.append(2 * fan_in * n * fan_out)                 # x^T g
        if input_grad:
            flops.append(2 * n * fan_out * fan_in)             # g W^T
        return backward(self, grad_out, input_grad)

    monkeypatch.setattr(Dense, "forward", counting_forward)
    monkeypatch.setattr(Dense, "backward", counting_backward)
    model = VAE(latent_dim=latent, hidden_dims=hidden, batch_size=batch, epochs=1,
                random_state=0).initialize(n_features)
    X = np.random.default_rng(0).random((batch, n_features)).astype(np.float32)
    model.fit_epoch(X)
    return sum(flops)


@pytest.mark.parametrize("n_features, hidden, latent, batch",
                         [(784, (400,), 20, 16), (64, (128,), 8, 32), (30, (20, 10), 3, 8)])
def test_roofline_counts_exactly_the_products_of_a_step(monkeypatch, n_features, hidden,
                                                        latent, batch):
    gemms = throughput.step_gemms(n_features, hidden, latent, batch)
    listed = sum(2 * m * k * n for m, k, n, _ in gemms)
    assert listed == step_flops(monkeypatch, n_features, hidden, latent, batch)


def test_target_verdicts():
    row = {"model": "mnist", "dtype": "float32", "batch": 128,
           "npvae": 130.0, "torch": 100.0, "roofline": 200.0}
    assert "met" in throughput.format_row(row)                 # 1.3x, 65 %
    assert "MISSED" in throughput.format_row({**row, "npvae": 129.0})
    assert "MISSED" in throughput.format_row({**row, "roofline": 220.0})   # 59 %
    assert "met (roofline only, no PyTorch)" in throughput.format_row({**row, "torch": None})
    digits = {**row, "model": "digits", "batch": 64, "npvae": 399.0}
    assert "n/a" in throughput.format_row({**digits, "torch": None})
    assert "MISSED" in throughput.format_row(digits)
    assert "met" in throughput.format_row({**digits, "npvae": 400.0})
    assert throughput.format_row({**row, "batch": 100}).rstrip().endswith("%")


def test_throughput_writes_its_table(tmp_path, capsys):
    out = tmp_path / "t.json"
    throughput.main(["--no-torch", "--models", "digits", "--dtypes", "float32",
                     "--batch-sizes", "32", "--n", "256", "--repeats", "1",
                     "--gemm-time", "0.001", "--out", str(out)])
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert (row["model"], row["dtype"], row["batch"]) == ("digits", "float32", 32)
    assert row["npvae"] > 0 and row["roofline"] > 0 and row["torch"] is None
    assert "digits  float32    32" in capsys.readouterr().out


def test_scaling_memory_beyond_the_data_does_not_grow_with_n():
    rng = np.random.default_rng(0)
    small = scaling.measure(n=256, batch=64, width=32, latent=4, repeats=1, rng=rng)
    large = scaling.measure(n=8192, batch=64, width=32, latent=4, repeats=1, rng=rng)
    n_params = (784 * 32 + 32) + 2 * (32 * 4 + 4) + (4 * 32 + 32) + (32 * 784 + 784)
    assert small["params"] == large["params"] == n_params
    # Parameters, gradients and Adam's buffers dominate; the shuffle's index
    # array (8 bytes per example) is the only part that grows with N.
    assert small["peak_bytes"] > 5 * small["param_bytes"]
    # (A temporary the size of X, say a bool mask of it, would add 6 MB.)
    assert large["peak_bytes"] - small["peak_bytes"] <= 8 * (8192 - 256) + 16384


def test_revisions_compares_a_revision_with_this_tree(capsys):
    root = BENCHMARKS.parent
    if subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    revisions.main(["--rev", "HEAD", "--models", "digits", "--batch-sizes", "32",
                    "--n", "128", "--rounds", "1"])
    line = capsys.readouterr().out.splitlines()[-1].split()
    assert line[:2] == ["digits", "32"] and line[-1].endswith("x")
    assert sys.modules["npvae_at_rev"].__file__ != sys.modules["npvae"].__file__


def test_quality_skips_without_data(tmp_path, capsys):
    assert quality.main(["--data-dir", str(tmp_path), "--no-torch"]) == 0
    assert capsys.readouterr().out.startswith("skipped: MNIST is not in")


def test_floor_runs_the_roofline_products_and_adam(capsys):
    gemms = throughput.step_gemms(64, (128,), 8, 16)
    ops = step_floor.operands(gemms, np.float32, np.random.default_rng(0))
    assert [(a.shape[0], a.shape[1], b.shape[1]) for a, b, _ in ops] == \
        [(m, k, n) for m, k, n, _ in gemms]
    (row,) = step_floor.main(["--model", "digits", "--batch-sizes", "16", "--n", "64",
                         "--rounds", "1", "--no-torch"])
    assert row["batch"] == 16 and set(row) == {"batch", "products", "products+adam", "npvae"}
    assert all(row[k] > 0 for k in ("products", "products+adam", "npvae"))


MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (MNIST_DIR / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_iwae_reproduction_smoke_run_resumes_bit_for_bit(tmp_path, capsys):
    reproduce = importlib.import_module("reproduce_iwae")
    assert [e for e, _ in reproduce.stage_schedule(8)] == [1, 3, 9, 27, 81, 243, 729, 2187]
    assert reproduce.stage_schedule(8)[1][1] == pytest.approx(7.2e-4)
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--smoke", "--data-dir", str(MNIST_DIR)]
    reproduce.main(common + ["--out", str(straight)])
    reproduce.main(common + ["--out", str(split), "--stages", "1"])   # stopped after stage 0
    reproduce.main(common + ["--out", str(split)])                    # resumed
    a, b = VAE.load(straight / "latest"), VAE.load(split / "latest")
    assert a.n_iter_ == b.n_iter_ == 4
    for name, p in a.params_.items():
        np.testing.assert_array_equal(p, b.params_[name], err_msg=name)
    rows = (split / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("0,1,") and rows[2].startswith("1,4,")
    straight_rows = (straight / "results.csv").read_text().splitlines()
    assert straight_rows[2].split(",")[3] == rows[2].split(",")[3]   # the same test NLL
    assert all(float(row.split(",")[6]) >= 0 for row in rows[1:])   # train_seconds kept
    assert load_checkpoint(split / "latest", return_extra=True)[1]["stage_seconds"] > 0
    capsys.readouterr()
    with runs.lock(split), pytest.raises(SystemExit) as stopped:
        reproduce.main(common + ["--out", str(split), "--stages", "3"])
    assert stopped.value.code == 2 and "in use by another" in capsys.readouterr().err
    figure = reproduce.main(["--plot", str(tmp_path / "nll.png"), "--runs", str(straight)])
    assert Path(figure).stat().st_size > 0
    table = reproduce.table(split).splitlines()
    assert len(table) == 4 and table[3].startswith("| 1 | 4 | 0.00072 | ")
    assert f"| {float(rows[2].split(',')[3]):.2f} | −" in table[3]


@pytest.mark.parametrize("argv, message", [
    (["--k", "0"], "argument --k: must be >= 1, got 0"),  # the npvae command's words
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["--eval-k", "x"], "argument --eval-k: expected an integer, got 'x'"),
    (["--jobs", "0"], "argument --jobs: must not be 0: 1 for one core, -1 for every core"),
    (["--epoch", "5"], "unrecognized arguments: --epoch 5"),      # no abbreviations
    (["--model", "vae", "--k", "3"], "--k is for --model iwae"),
    (["--data-dir", "nowhere"], "--data-dir nowhere has no mnist/ folder"),
    (["--gradient-estimator", "dreg"], "VAE.gradient_estimator='dreg' needs importance weights"),
    (["--gradient-estimator", "drag"], "argument --gradient-estimator: invalid choice: 'drag'"),
    (["--stochastic-layers", "3"], "argument --stochastic-layers: invalid choice: 3"),
    (["--stochastic-layers", "2", "--gradient-estimator", "dreg"],
     "TwoLayerVAE.gradient_estimator='dreg' needs importance weights"),
])
def test_a_reproductions_bad_argument_is_one_line_and_exit_2(argv, message, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    reproduce = importlib.import_module("reproduce_iwae")
    with pytest.raises(SystemExit) as stopped:
        reproduce.main(argv + ["--out", "run"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1
    assert err.startswith("reproduce_iwae: error: ") and message in err
    assert not (tmp_path / "run").exists()       # refused before anything was written


def test_a_reproduction_resumed_with_other_settings_is_refused_naming_them(tmp_path):
    reproduce = importlib.import_module("reproduce_iwae")
    run = npvae.IWAE(k=5, batch_size=20, random_state=0)
    given = argparse.Namespace(model="vae", k=None, seed=1, batch_size=20,
                               gradient_estimator="dreg", stochastic_layers=2)
    with pytest.raises(ValueError, match=r"trained with --model iwae \(given vae\), "
                                         r"--seed 0 \(given 1\), --gradient-estimator standard "
                                         r"\(given dreg\), --stochastic-layers 1 \(given 2\); "
                                         r"leave those options out"):
        reproduce.settle_settings(given, tmp_path, run)
    left_out = argparse.Namespace(**dict.fromkeys(reproduce.SETTINGS))
    reproduce.settle_settings(left_out, tmp_path, run)
    assert vars(left_out) == {"model": "iwae", "k": 5, "seed": 0, "batch_size": 20,
                              "gradient_estimator": "standard", "stochastic_layers": 1}
    new = argparse.Namespace(**dict.fromkeys(reproduce.SETTINGS))
    reproduce.settle_settings(new, tmp_path, None)
    assert vars(new) == reproduce.SETTINGS


@pytest.mark.skipif(not (MNIST_DIR / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_a_two_layer_reproduction_keeps_its_layers_and_counts_units_per_layer(tmp_path):
    reproduce = importlib.import_module("reproduce_iwae")
    run = tmp_path / "run"
    common = ["--smoke", "--data-dir", str(MNIST_DIR), "--out", str(run), "--jobs", "1"]
    reproduce.main(common + ["--stochastic-layers", "2"])      # --smoke: 2 stages
    model = load_checkpoint(run / "latest")
    assert type(model) is npvae.TwoLayerVAE and model.n_iter_ == 4
    assert tuple(model.latent_dims) == (100, 50) and model.epsilon == 1e-4
    assert tuple(map(tuple, model.hidden_dims)) == ((200, 200), (100, 100))
    with pytest.raises(SystemExit) as stopped:
        reproduce.main(common + ["--stochastic-layers", "1"])
    assert stopped.value.code == 2
    reproduce.main(common)                                     # resumed with its 2 layers
    assert type(load_checkpoint(run / "latest")) is npvae.TwoLayerVAE
    units = [row.split(",")[5] for row in (run / "results.csv").read_text().splitlines()[1:]]
    assert len(units) == 2
    for counts in units:
        first, second = map(int, counts.split("+"))
        assert 0 <= first <= 100 and 0 <= second <= 50
    # Its figure draws both layers' unit activity, with the paper's two-layer numbers.
    X_test = reproduce.load_mnist(argparse.Namespace(data_dir=str(MNIST_DIR), smoke=True))[1]
    figure = reproduce.plot([str(run)], tmp_path / "two-layer.png", X_test)
    assert Path(figure).stat().st_size > 0
    nll_panel, units_panel = plt.gcf().axes
    assert "paper, two-layer VAE: 85.33" in nll_panel.get_legend_handles_labels()[1]
    labels = units_panel.get_legend_handles_labels()[1]
    assert labels[:2] == [f"run, z1, 4 epochs: {first} active",
                          f"run, z2, 4 epochs: {second} active"]
    plt.close("all")
    # Exported, it is a run folder the CLI rebuilds in the same layout and evaluates.
    reproduce.main(["--out", str(run), "--export", str(tmp_path / "shipped")])
    config = json.loads((tmp_path / "shipped" / "config.json").read_text())
    assert config["stochastic_layers"] == 2 and config["latent_dim"] == 50
    assert config["reproduction"]["results"]["active_units"] == [first, second]
    rebuilt = npvae.app.runs.new_model(config)
    assert tuple(rebuilt.latent_dims) == (100, 50)
    assert tuple(map(tuple, rebuilt.hidden_dims)) == ((200, 200), (100, 100))


def test_a_reproduction_stopped_by_ctrl_c_exits_130(tmp_path, capsys, monkeypatch):
    reproduce = importlib.import_module("reproduce_iwae")
    (tmp_path / "data" / "mnist").mkdir(parents=True)

    def interrupted(args, out):
        raise KeyboardInterrupt
    monkeypatch.setattr(reproduce, "train", interrupted)
    with pytest.raises(SystemExit) as stopped:
        reproduce.main(["--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data")])
    assert stopped.value.code == 130
    assert "the same command resumes" in capsys.readouterr().err


def test_blas_threads_bound_training_and_evaluation_and_nothing_else(tmp_path, monkeypatch):
    # Runs side by side each take one BLAS thread, lest the threads outnumber the cores.
    from threadpoolctl import threadpool_info
    reproduce = importlib.import_module("reproduce_iwae")
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    seen = []

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    def train(args, out):      # training and evaluation, as train runs both
        seen.append(blas_threads())
    monkeypatch.setattr(reproduce, "train", train)
    argv = ["--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data")]
    outside = blas_threads()
    assert outside, "threadpoolctl finds no BLAS to limit"
    n = 2 if outside == [1] * len(outside) else 1     # a count BLAS is not at already
    reproduce.main(argv + ["--blas-threads", str(n)])
    reproduce.main(argv)
    assert seen == [[n] * len(outside), outside]
    assert blas_threads() == outside                        # restored afterwards
    # Not a setting of the run, which a resume would have to repeat.
    assert "blas_threads" not in reproduce.SETTINGS
    with pytest.raises(SystemExit) as stopped:
        reproduce.main(argv + ["--blas-threads", "0"])
    assert stopped.value.code == 2


@pytest.mark.skipif(not (MNIST_DIR / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_an_exported_reproduction_is_a_run_folder_the_cli_evaluates(tmp_path, capsys):
    reproduce = importlib.import_module("reproduce_iwae")
    run, shipped = tmp_path / "run", tmp_path / "shipped"
    reproduce.main(["--smoke", "--model", "iwae", "--k", "3", "--gradient-estimator", "dreg",
                    "--data-dir", str(MNIST_DIR), "--out", str(run)])
    path = reproduce.main(["--out", str(run), "--export", str(shipped)])
    assert path == shipped / "checkpoints" / "epoch-0004.npz"
    model, stage = npvae.app.checkpoints.load_checkpoint(shipped), npvae.app.checkpoints.load_checkpoint(run / "stage-1")
    assert type(model) is npvae.IWAE and model.k == 3 and model.optimizer_.t == 0
    assert model.gradient_estimator == "dreg"
    for name, p in stage.params_.items():
        np.testing.assert_array_equal(p, model.params_[name], err_msg=name)
    assert path.stat().st_size < 0.4 * (run / "stage-1.npz").stat().st_size
    capsys.readouterr()
    data = ["--data-dir", str(MNIST_DIR)]
    assert cli.main(["evaluate", str(shipped), "--k", "2", *data]) == 0
    assert "epoch 4, test set of mnist: 10000 examples" in capsys.readouterr().out
    assert cli.main(["sample", str(shipped), "--out", str(tmp_path / "s.png")]) == 0
    assert cli.main(["train", "--resume", str(shipped), *data]) == 2
    assert "saved without Adam's state" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="exists; export writes a new folder only"):
        reproduce.main(["--out", str(run), "--export", str(shipped)])
    config = json.loads((shipped / "config.json").read_text())
    assert config["seed"] == 0 and config["epochs"] == 4 and config["k"] == 3
    # The config says how it trained, as the checkpoint does: the CLI rebuilds a DReG IWAE.
    assert config["gradient_estimator"] == "dreg"
    assert npvae.app.runs.new_model(config).gradient_estimator == "dreg"
    assert config["reproduction"]["epsilon"] == 1e-4
    assert config["reproduction"]["results"]["epochs"] == 4
    assert [st["until_epoch"] for st in config["reproduction"]["stages"]] == [1, 4]
    assert reproduce.table(shipped) == reproduce.table(run)    # results.csv shipped too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.png", "shipped"]
    images = (np.random.default_rng(0).random((20, 784)) < 0.5).astype(np.float32)
    figure = reproduce.plot([shipped], tmp_path / "p.png", images)
    assert Path(figure).stat().st_size > 0


@pytest.mark.skipif(not (MNIST_DIR / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_a_reproduction_killed_before_its_stage_checkpoint_saves_it_on_resume(tmp_path):
    reproduce = importlib.import_module("reproduce_iwae")
    run = tmp_path / "run"
    common = ["--smoke", "--data-dir", str(MNIST_DIR), "--out", str(run), "--seed", "7"]
    reproduce.main(common)
    # As if killed after the last epoch's save but before the stage's own.
    (run / "stage-1.npz").unlink()
    rows = (run / "results.csv").read_text().splitlines()
    (run / "results.csv").write_text("\n".join(rows[:2]) + "\n")
    reproduce.main(common)
    assert VAE.load(run / "stage-1").n_iter_ == 4
    assert (run / "results.csv").read_text().splitlines()[2] .split(",")[3] == \
        rows[2].split(",")[3]
    assert json.loads((reproduce.export(run, tmp_path / "shipped").parent.parent
                       / "config.json").read_text())["seed"] == 7
    assert reproduce.export(run, tmp_path / "first", stage=0).name == "epoch-0001.npz"
    assert len(reproduce.table(tmp_path / "first").splitlines()) == 3  # header, rule, stage 0
    with pytest.raises(SystemExit, match="has no evaluated stage 2 to export"):
        reproduce.export(run, tmp_path / "third", stage=2)


def test_reproduction_refuses_no_jobs_before_training(tmp_path, capsys):
    reproduce = importlib.import_module("reproduce_iwae")
    with pytest.raises(SystemExit):
        reproduce.main(["--smoke", "--jobs", "0", "--out", str(tmp_path / "run")])
    assert "argument --jobs: must not be 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_evaluation_benchmark_floor_decodes_the_estimates_blocks(tmp_path, capsys):
    rows = evaluation_benchmark.main(["--smoke", "--data-dir", str(tmp_path)])
    assert [(r["model"], r["data"]) for r in rows] == [("mnist", "random"), ("digits", "digits")]
    assert all(r[label] > 0 for r in rows
               for label in ("1 core", "all cores", "floor 1", "floor all"))
    assert all(r["speedup"] == r["all cores"] / r["1 core"] for r in rows)
    assert "floor all" in capsys.readouterr().out
    # The floor runs the decoder's products for exactly the estimate's blocks.
    model = VAE(latent_dim=3, hidden_dims=(16, 8), random_state=0).initialize(12)
    X = np.random.default_rng(0).random((9, 12))
    steps = []
    importance_weighted_log_likelihood(model, X, k=7, batch_rows=10,
                                       callback=lambda done, _: steps.append(done))
    blocks = evaluation_benchmark.decoder_blocks(importance_weighted_log_likelihood, model, X,
                                                 7, batch_rows=10)
    assert blocks == list(np.diff([0] + steps))
    ops = evaluation_benchmark.floor_operands(model, blocks, np.random.default_rng(0))
    assert {rows: [(a.shape, W.shape, out.shape) for a, W, out in chain]
            for rows, chain in ops.items()} == \
        {rows: [((rows, 3), (3, 8), (rows, 8)), ((rows, 8), (8, 16), (rows, 16)),
                ((rows, 16), (16, 12), (rows, 12))] for rows in set(blocks)}
    assert "predict" not in vars(model.decoder_) and "forward" not in vars(model.decoder_)


SHIPPED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "iwae-table1"


@pytest.mark.parametrize("name, cls, epochs", [("vae-364", "VAE", 364),
                                               ("iwae-k5-364", "IWAE", 364),
                                               ("iwae-k5-1093", "IWAE", 1093),
                                               ("vae-3280", "VAE", 3280),
                                               ("dreg-k5-364", "IWAE", 364),
                                               ("vae-2l-364", "TwoLayerVAE", 364),
                                               ("iwae-2l-k5-364", "TwoLayerIWAE", 364)])
def test_the_shipped_reproduction_models_load_as_run_folders(name, cls, epochs, tmp_path):
    """The trained models docs/reproduction.md points to: whole, and taken by the CLI."""
    run, config = runs.read_config(SHIPPED / name)
    model = npvae.app.checkpoints.load_checkpoint(run)
    assert type(model).__name__ == cls and model.n_iter_ == config["epochs"] == epochs
    if model.stochastic_layers == 2:        # the authors' code's sizes (docs/reproduction.md)
        assert model.latent_dims == (100, 50) and model.hidden_dims == ((200, 200), (100, 100))
        assert config["stochastic_layers"] == 2 and model.k == (5 if "iwae" in name else 1)
    else:
        assert model.latent_dim == 50 and model.hidden_dims == (200, 200)
    assert model.optimizer_.t == 0 and model.epsilon == 1e-4
    results = config["reproduction"]["results"]
    assert results["epochs"] == epochs
    # docs/reproduction.md prints the model's test NLL and active units as its run measured them.
    doc = (SHIPPED.parents[2] / "docs" / "reproduction.md").read_text()
    units = results["active_units"]
    units = "+".join(map(str, units)) if isinstance(units, list) else str(units)
    assert f"{results['test_nll']:.2f}" in doc and f"{units})" in doc
    assert model.gradient_estimator == config.get("gradient_estimator", "standard") == \
        ("dreg" if name.startswith("dreg") else "standard")
    # The parameters are the file's arrays bit for bit (the first four were shipped as an
    # earlier npvae's .json + .npz pair, without metadata), and saved again as one file
    # they load the same.
    (npz,) = (run / "checkpoints").glob("*.npz")
    with np.load(npz, allow_pickle=False) as stored:
        params = sorted(f"param/{k}" for k in model.params_)
        assert sorted(stored.files) in (params, sorted(["metadata", *params]))
        for k, p in model.params_.items():
            assert p.dtype == stored[f"param/{k}"].dtype
            np.testing.assert_array_equal(p, stored[f"param/{k}"], err_msg=k)
    again = npvae.app.checkpoints.load_checkpoint(model.save(tmp_path / "again"))
    assert again.history_ == model.history_ and again.get_params() == model.get_params()
    for k, p in model.params_.items():
        np.testing.assert_array_equal(p, again.params_[k], err_msg=k)
    assert cli.main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0


def test_evaluating_a_shipped_model_without_its_data_says_where_to_point(tmp_path, capsys):
    assert cli.main(["evaluate", str(SHIPPED / "vae-364"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist: missing" in err
    assert "(CLI: npvae train --download)" in err and "(CLI: --data-dir)" in err


def test_two_layer_step_counts_the_products_and_prints_the_ratios(capsys):
    bench = importlib.import_module("two_layer_step")
    vae = bench.models(20)["VAE"][0].initialize(bench.D)
    batch = npvae.models.base.Batch(np.zeros((20, bench.D), np.float32), None, vae.draw_noise(20))
    sizes = [784 * 200, 200 * 200, 200 * 50, 200 * 50, 50 * 200, 200 * 200, 200 * 784]
    # Forward 2 R |W| per layer; backward the weight gradient, and the input
    # gradient everywhere but the encoder's first layer.
    assert bench.gemm_flops(vae, batch) == 2 * 20 * (3 * sum(sizes) - sizes[0])
    # The same products alone: forward x @ W, backward x.T @ grad_out and grad_out @ W.T.
    products = bench.step_products(vae, batch)
    assert len(products) == 3 * len(sizes) - 1
    assert products[0] == ((20, 784), False, (784, 200), False)
    assert ((20, 784), True, (20, 200), False) in products          # the first weight gradient
    assert ((20, 784), False, (200, 784), True) in products   # the output layer's input gradient
    assert bench.blas_time(products, 2) > 0
    # The timers come off again: Dense's methods, Adam's step.
    forward, backward = Dense.forward, Dense.backward
    products, adam, subnormal = bench.pieces_time(vae, [batch], 3, bench.snapshot(vae))
    assert products > 0 and adam > 0 and subnormal == 0    # zero pixels: no tiny gradients
    assert (Dense.forward, Dense.backward) == (forward, backward)
    assert "step" not in vars(vae.optimizer_)
    # Every round replays the same steps from the same state.
    start, batches = bench.snapshot(vae), [batch, batch._replace(x=np.ones_like(batch.x))]
    bench.steps_time(vae, batches, 3, start)
    after_one_round = vae.parameters_.theta.copy()
    bench.pieces_time(vae, batches, 3, start)
    np.testing.assert_array_equal(vae.parameters_.theta, after_one_round)
    assert not np.array_equal(after_one_round, start[0]) and vae.optimizer_.t == start[1] + 3
    ratios = bench.main(["--rounds", "1", "--steps", "2", "--blas-threads", "1", "--synthetic"])
    assert set(ratios) == {"VAE", "IWAE k=5"} and all(r > 0 for r in ratios.values())
    out = capsys.readouterr().out
    assert "random pixels" in out and "measured / predicted" in out
    assert out.count("at their measured rates the products predict") == 2
    assert out.count("x the products in the step") == 2


def test_two_layer_step_times_two_checkpoints_from_their_trained_state(tmp_path, capsys):
    bench = importlib.import_module("two_layer_step")
    paths = []
    for model in (npvae.IWAE(k=2, latent_dim=3, hidden_dims=(8,), gradient_estimator="dreg"),
                  npvae.TwoLayerIWAE(k=2, latent_dims=(4, 3), hidden_dims=((8,), (5,)))):
        model.set_params(batch_size=20, epochs=1, random_state=0)
        paths.append(model.fit(np.random.default_rng(0).random((40, bench.D)) < 0.3)
                     .save(tmp_path / f"{model.stochastic_layers}.npz"))
    ratios = bench.main(["--checkpoints", *map(str, paths), "--rounds", "1", "--steps", "2",
                         "--synthetic"])
    assert list(ratios) == ["IWAE k=2"]
    out = capsys.readouterr().out
    # The fitted sizes' products, counted: not the fresh models'.
    assert "IWAE k=2 " in out and "143.82" not in out and "measured / predicted" in out
