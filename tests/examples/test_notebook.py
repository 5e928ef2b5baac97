"""docs/tutorial.ipynb runs top to bottom.

Every check in the notebook is an ``assert`` of one of npvae's functions
against plain NumPy or central differences, so executing it tests those
functions as the student sees them; and it is stored with its outputs, so
that it renders on a code host.  Needs the ``test`` extra (nbclient,
nbformat, ipykernel); without it these tests skip.

After editing the notebook, store its outputs again from a clean run::

    python -c "import nbclient, nbformat; nb = nbformat.read('docs/tutorial.ipynb', 4); \
    nbclient.NotebookClient(nb, kernel_name='python3', record_timing=False).execute(); \
    nbformat.write(nb, 'docs/tutorial.ipynb')"
"""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"


@pytest.fixture
def one_blas_thread(monkeypatch):
    # The kernel inherits the environment; on a loaded machine threaded BLAS
    # makes small matrix products many times slower.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")


def client_for(nb, cwd):
    """A client that runs ``nb`` in a fresh python3 kernel started in ``cwd``;
    a failing cell raises ``nbclient.exceptions.CellExecutionError``."""
    return nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                   resources={"metadata": {"path": str(cwd)}})


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def errors(cell):
    return [o for o in cell.outputs if o.output_type == "error"]


def figures(cells):
    return [o for cell in cells for o in cell.outputs if "image/png" in o.get("data", {})]


def test_stored_notebook_renders_with_outputs_and_stays_small():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert len(cells) >= 10
    for number, cell in enumerate(cells, start=1):
        # Executed in order, top to bottom, in one run; each shows something.
        assert cell.execution_count == number, cell.source[:60]
        assert cell.outputs and not errors(cell), cell.source[:60]
    assert len(figures(cells)) == 3
    assert NOTEBOOK.stat().st_size < 1_000_000


# Bugs planted in the kernel after a clean run, each with the cell whose
# asserts must then stop: the reparameterization's gradient with sigma in
# place of sigma / 2, checked in section 2; and the KL's gradient without
# its -1, which reaches VAE.train_step and the section 5b check against the
# backward pass written in NumPy.
PLANTS = [
    ("reparameterize_backward = lambda g, logvar, eps: (g, g * np.exp(0.5 * logvar) * eps)",
     "reparameterize_backward(G_z"),
    ("import npvae.core.losses\n"
     "npvae.core.losses.kl_standard_normal_backward = lambda mu, logvar: (mu, 0.5 * np.exp(logvar))",
     "step = vae.train_step(x, eps)"),
]


def test_notebook_executes_writes_nothing_and_its_checks_bite(tmp_path, one_blas_thread):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = client_for(nb, tmp_path)
    with client.setup_kernel():
        client.execute(cleanup_kc=False)    # one kernel for all of this test
        cells = code_cells(nb)
        assert not [cell for cell in cells if errors(cell)]
        assert len(figures(cells)) == 3
        assert not list(tmp_path.iterdir())

        checks = [next(c for c in cells if marker in c.source) for _, marker in PLANTS]
        for check in checks:                # they pass again as they are ...
            client.execute_cell(check, nb.cells.index(check))
        for (plant, _), check in zip(PLANTS, checks):   # ... and stop once planted
            nb.cells.append(nbformat.v4.new_code_cell(plant))
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
            with pytest.raises(nbclient.exceptions.CellExecutionError) as failure:
                client.execute_cell(check, nb.cells.index(check))
            assert failure.value.ename == "AssertionError", failure.value
