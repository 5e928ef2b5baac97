"""Smoke-run demos/continuous_bernoulli.py in its fast mode (on MNIST when
the shared data are found, else on the digits): it must finish, write its
figure and print numbers that hold for any model."""
import math
import re
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_continuous_bernoulli_demo_runs_fast(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["continuous_bernoulli.py", "--fast", "--out", str(tmp_path)])
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    runpy.run_path(str(ROOT / "demos" / "continuous_bernoulli.py"), run_name="__main__")
    out = capsys.readouterr().out
    n = {name: float(value) for name, value in re.findall(r"^(\w+) = (\S+)$", out, flags=re.M)}
    assert len(n) == 14 and all(math.isfinite(v) for v in n.values()), out
    n_features = 64 if "MNIST not found" in out else 784
    # BCE leaves out sum_d log C(eta_d), and log C >= log 2 everywhere.
    assert n["bernoulli_missing_log_norm"] >= n_features * math.log(2)
    assert n["test_elbo_continuous_bernoulli"] > n["test_elbo_bernoulli"]
    assert 0.8 < n["ink_original"] < 0.95 and 0.1 < n["intensity_original"] < 0.35
    for name in ("bernoulli_mean", "continuous_bernoulli_mean",
                 "continuous_bernoulli_lambda", "gaussian_mean"):
        assert 0 < n[f"ink_{name}"] < 1 and 0 < n[f"intensity_{name}"] < 1
    assert 1000 < (tmp_path / "continuous_bernoulli.png").stat().st_size < 150_000
