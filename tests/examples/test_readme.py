"""The README's Python snippets run as written, in order (a later one may use
an earlier one's names, as a reader's session would), and print the numbers
their comments state: each float a ``print`` shows matches, to within one
unit of its last decimal, the decimal number at the same place in that
line's comment (BLAS kernels round differently between machines)."""
import re
import sys
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[2] / "README.md"
DECIMAL = re.compile(r"[-+]?\d+\.(\d+)")


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def check_printed(line, args):
    """The floats among ``args`` against the decimals in ``line``'s comment."""
    comment = line.partition("#")[2].replace("\N{MINUS SIGN}", "-")
    stated = [(float(m.group()), len(m.group(1))) for m in DECIMAL.finditer(comment)]
    printed = [float(a) for a in args if isinstance(a, (float, np.floating))]
    if not printed:
        return 0
    assert len(printed) == len(stated), (line, printed)
    for got, (want, decimals) in zip(printed, stated):
        assert abs(got - want) <= 10.0 ** -decimals, (line, got)
    return len(printed)


def test_readme_snippets_run_and_print_the_numbers_they_state(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    blocks = python_blocks()
    assert len(blocks) >= 4
    namespace, calls = {}, []

    def recording_print(*args, **kwargs):
        calls.append((sys._getframe(1).f_lineno, args))

    namespace["print"] = recording_print
    checked = 0
    for i, block in enumerate(blocks):
        calls.clear()
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        lines = block.splitlines()
        checked += sum(check_printed(lines[lineno - 1], args) for lineno, args in calls)
    assert checked >= 5     # the ELBO, the PCA pair, the accuracy and the scaled ELBO
