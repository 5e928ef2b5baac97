"""Smoke-run demos/gradient_snr.py in its fast mode on the shipped IWAE run
(skipped without MNIST): it must finish, write its figure, and print SNRs
that hold for any model: finite, the decoder's the same for both
estimators (DReG leaves its gradient bit for bit)."""
import math
import re
import runpy
import sys
from pathlib import Path

import pytest

from npvae.app.datasets import MissingDataError, load_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_gradient_snr_demo_runs_fast(tmp_path, monkeypatch, capsys):
    try:
        load_dataset("mnist", data_dir=ROOT.parent / "shared" / "data")
    except MissingDataError:
        pytest.skip("MNIST not found")
    monkeypatch.delenv("NPVAE_DATA_DIR", raising=False)
    monkeypatch.setattr(sys, "argv", ["gradient_snr.py", "--fast", "--out", str(tmp_path)])
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    runpy.run_path(str(ROOT / "demos" / "gradient_snr.py"), run_name="__main__")
    out = capsys.readouterr().out
    n = {name: float(value) for name, value in re.findall(r"^(\w+) = (\S+)$", out, flags=re.M)}
    assert len(n) == 12 and all(math.isfinite(v) and v >= -1 for v in n.values()), out
    for k in (1, 10):
        assert n[f"snr_standard_decoder_k{k}"] == n[f"snr_dreg_decoder_k{k}"]
        assert all(n[f"snr_{e}_{g}_k{k}"] > 0 for e in ("standard", "dreg")
                   for g in ("encoder", "decoder"))
    assert n["slope_standard_decoder"] == n["slope_dreg_decoder"]
    assert 1000 < (tmp_path / "gradient_snr.png").stat().st_size < 150_000
