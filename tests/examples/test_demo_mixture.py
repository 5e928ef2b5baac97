"""Smoke-run demos/mixture_prior.py in its fast mode: it must finish, write
its figure and print numbers in the ranges any briefly trained model lands in."""
import math
import re
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RANGES = {
    "ari_mixture_prior": (-0.1, 1.0), "ari_plain_vae_gmm": (-0.1, 1.0),
    # Bernoulli ELBO of 64 grey-level pixels: about -64 log 2 for a model
    # that learnt nothing, above -20 only with a wrong bound.
    "heldout_elbo_mixture_nats": (-45, -20), "heldout_elbo_plain_nats": (-45, -20),
    "components_used": (1, 10),
}


def test_mixture_prior_demo_runs_fast_and_prints_sane_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["mixture_prior.py", "--fast", "--out", str(tmp_path)])
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    runpy.run_path(str(ROOT / "demos" / "mixture_prior.py"), run_name="__main__")
    out = capsys.readouterr().out
    numbers = {name: float(value) for name, value in
               re.findall(r"^(\w+) = (\S+)$", out, flags=re.M)}
    assert set(RANGES) <= set(numbers) and all(math.isfinite(v) for v in numbers.values()), out
    for name, (low, high) in RANGES.items():
        assert low <= numbers[name] <= high, (name, numbers[name])
    size = (tmp_path / "mixture_prior.png").stat().st_size
    assert 1000 < size < 150_000
