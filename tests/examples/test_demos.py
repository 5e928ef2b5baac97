"""Smoke-run every demo in its fast mode: it must finish, write its figure
(a PNG at the figures' resolution, its images in npvae's colours, each data
pixel at least two figure pixels) into a scratch folder, never into docs/,
and print headline numbers that make sense."""
import hashlib
import math
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from npvae.app import plots

ROOT = Path(__file__).resolve().parents[2]

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


def histogram_has_a_y_label(fig):
    (hist,) = [ax for ax in fig.axes if ax.patches]
    assert hist.get_xlabel() and hist.get_ylabel()


def interpolation_rows_name_their_models(fig):
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith("0 → 6")]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["PCA", "AE", "VAE"]
    rows = ax.get_images()[0].get_array().shape[0]
    assert rows == 3 * 8 + 2 and list(ax.get_yticks()) == [3.5, 12.5, 21.5]  # row centres


#: demo -> a check of what its figure must say, beyond the common ones.
FIGURE_TEXT = {"anomaly": histogram_has_a_y_label,
               "compare_pca": interpolation_rows_name_their_models}


def docs_state():
    """Every file under docs/ with its modification time and content hash,
    and git's view of the folder when this is a git checkout."""
    files = {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in sorted((ROOT / "docs").rglob("*")) if p.is_file()}
    git = shutil.which("git")
    status = subprocess.run([git, "status", "--porcelain", "docs"], cwd=ROOT, text=True,
                            capture_output=True).stdout if git else None
    return files, status


@pytest.mark.parametrize("demo", sorted(DEMOS))
def test_demo_runs_fast_and_prints_sane_numbers(demo, tmp_path, monkeypatch, capsys):
    # In-process, as ``python demos/<demo>.py --fast`` run from tmp_path, to
    # spare each demo the start-up of a fresh interpreter.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"{demo}.py", "--fast"])
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    import _common
    figures = []
    real_save = _common.save_figure
    monkeypatch.setattr(_common, "save_figure",
                        lambda fig, *a: figures.append(fig) or real_save(fig, *a))
    before = docs_state()
    runpy.run_path(str(ROOT / "demos" / f"{demo}.py"), run_name="__main__")
    assert docs_state() == before  # the committed figures are left alone
    out = capsys.readouterr().out
    numbers = {name: float(value) for name, value in
               re.findall(r"^(\w+) = (\S+)$", out, flags=re.M)}
    figure, ranges = DEMOS[demo]
    assert numbers and all(math.isfinite(v) for v in numbers.values()), out
    for name, (low, high) in ranges.items():
        assert low <= numbers[name] <= high, (name, numbers[name])
    path = tmp_path / "demo-output" / figure
    assert f"figure: {Path('demo-output') / figure}" in out
    assert 1000 < path.stat().st_size < 600_000
    with Image.open(path) as png:
        assert png.info["dpi"] == pytest.approx((plots.DPI, plots.DPI), abs=0.1)
    (fig,) = figures
    for image in (im for ax in fig.axes for im in ax.get_images()):
        assert image.get_cmap().name == plots.IMAGE_CMAP
        box, (rows, cols) = image.axes.get_window_extent(), image.get_array().shape
        assert box.width / fig.dpi * plots.DPI >= 2 * cols
        assert box.width / cols == pytest.approx(box.height / rows, rel=0.02)  # square pixels
    FIGURE_TEXT.get(demo, lambda fig: None)(fig)


def test_demos_write_to_docs_only_when_asked(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    import _common
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    assert _common.parse_args("d").out == Path("demo-output")
    monkeypatch.setattr(sys, "argv", ["demo.py", "--out", "docs"])
    assert _common.parse_args("d").out == Path("docs")
