"""Smoke-run every demo in its fast mode: it must finish, write its figure
(a small PNG) and print headline numbers that make sense."""
import math
import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# demo -> (figure, {printed name: (low, high)}): ranges any model, even one
# trained for three epochs, must land in; a wrong formula lands outside.
DEMOS = {
    "compare_pca": ("compare_pca.png", {
        "mse_pca_k8": (0.005, 0.06), "mse_ae_k8": (0.0, 0.2), "mse_vae_k8": (0.0, 0.2),
        "accuracy_2d_pca": (0.4, 0.8), "accuracy_2d_ae": (0.0, 1.0),
        "accuracy_2d_vae": (0.0, 1.0)}),
    "linear_vae_ppca": ("linear_vae_ppca.png", {
        "gap_elbo_nats": (-0.1, 100), "max_angle_deg": (0, 90)}),
    "denoising": ("denoising.png", {
        "psnr_gaussian_before_db": (12, 17), "psnr_gaussian_after_db": (5, 40),
        "psnr_salt_and_pepper_before_db": (9, 13)}),
    "generation": ("generation.png", {
        "beta1_kl_nats": (0, 50), "beta1_active_units": (0, 8)}),
    "anomaly": ("anomaly.png", {"roc_auc_heldout_4": (0, 1)}),
    "inpainting": ("inpainting.png", {
        "inpainting_mse_baseline": (0.02, 0.2), "super_resolution_mse_baseline": (0.05, 0.3),
        "inpainting_mse_vae": (0, 0.5), "super_resolution_mse_vae": (0, 0.5)}),
}


@pytest.mark.parametrize("demo", sorted(DEMOS))
def test_demo_runs_fast_and_prints_sane_numbers(demo, tmp_path, monkeypatch, capsys):
    # In-process, as ``python demos/<demo>.py --fast --out tmp``, to spare
    # each demo the start-up of a fresh interpreter.
    monkeypatch.setattr(sys, "argv", [f"{demo}.py", "--fast", "--out", str(tmp_path)])
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    runpy.run_path(str(ROOT / "demos" / f"{demo}.py"), run_name="__main__")
    out = capsys.readouterr().out
    numbers = {name: float(value) for name, value in
               re.findall(r"^(\w+) = (\S+)$", out, flags=re.M)}
    figure, ranges = DEMOS[demo]
    assert numbers and all(math.isfinite(v) for v in numbers.values()), out
    for name, (low, high) in ranges.items():
        assert low <= numbers[name] <= high, (name, numbers[name])
    size = (tmp_path / figure).stat().st_size
    assert 1000 < size < 150_000
