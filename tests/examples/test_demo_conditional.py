"""Smoke-run demos/conditional.py in its fast mode (as tests/test_demos.py
does for the other demos): it must finish, write its figure into the
scratch folder demo-output/ (never into docs/) at the figures' resolution,
and print numbers that make sense."""
import hashlib
import math
import re
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

from npvae.app import plots

ROOT = Path(__file__).resolve().parents[2]

# Ranges any model, even one trained for three epochs, must land in; a
# decoder that ignored the label would be recognised about 10 % of the time.
RANGES = {"classifier_test_accuracy": (0.93, 1.0), "cvae_test_elbo_nats": (-40, -15),
          "sample_accuracy": (0.3, 1.0), "transfer_accuracy": (0.3, 1.0),
          **{f"sample_accuracy_class_{c}": (0.0, 1.0) for c in range(10)}}


def docs_hashes():
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (ROOT / "docs").rglob("*") if p.is_file()}


def test_conditional_demo_runs_fast_and_prints_sane_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["conditional.py", "--fast"])
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    before = docs_hashes()
    runpy.run_path(str(ROOT / "demos" / "conditional.py"), run_name="__main__")
    assert docs_hashes() == before
    out = capsys.readouterr().out
    numbers = {name: float(value) for name, value in
               re.findall(r"^(\w+) = (\S+)$", out, flags=re.M)}
    assert set(numbers) == set(RANGES), out
    assert all(math.isfinite(v) for v in numbers.values()), out
    for name, (low, high) in RANGES.items():
        assert low <= numbers[name] <= high, (name, numbers[name])
    path = tmp_path / "demo-output" / "conditional.png"
    assert 1000 < path.stat().st_size < 600_000
    with Image.open(path) as png:
        assert png.info["dpi"] == pytest.approx((plots.DPI, plots.DPI), abs=0.1)
