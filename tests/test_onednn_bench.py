"""benchmarks/onednn_bench.py: without the optional `onednn` extra it says so in one line and
exits 2; with it, its quick run checks oneDNN against rnnfast before timing, and that check
catches a wrong mapping of the weights."""
import json

import pytest
import torch

from benchmarks import onednn, onednn_bench


needs_onednn = pytest.mark.skipif(
    not onednn.installed(),
    reason="the optional onednn extra is not installed (pip install -e '.[onednn]')")


def test_without_the_extra_one_line_names_it_and_exit_2(monkeypatch, capsys):
    # Names no machine has, so that the test is the same with the extra installed or not.
    monkeypatch.setattr(onednn, "RUNTIME", "onednn-cpu-gomp-not-installed")
    monkeypatch.setattr(onednn, "DEVEL", "onednn-devel-cpu-gomp-not-installed")
    assert onednn_bench.main(["--quick"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "python -m benchmarks.onednn_bench: error: oneDNN is not installed "
        "(onednn-cpu-gomp-not-installed and onednn-devel-cpu-gomp-not-installed missing): "
        "pip install -e '.[onednn]' (the onednn-cpu-gomp and onednn-devel-cpu-gomp wheels)\n")


@needs_onednn
def test_quick_run_checks_and_times_every_cell(tmp_path, capsys):
    out = tmp_path / "onednn.json"
    assert onednn_bench.main(["--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    cells = onednn_bench.cells(onednn_bench.QUICK)
    assert len(rows) == len(cells) * len({torch.get_num_threads(), 1})
    for r in rows:
        assert all(t > 0 for t in r["median_s"].values())
        assert len(r["median_s"]) == (2 if r["comparison"] == onednn_bench.DENSE else 3)
    assert "rnnfast is ahead in" in capsys.readouterr().out


class _TransposedIterWeight:
    """oneDNN's cell given W_hh instead of W_hhᵀ: the mistake the check is there to catch."""

    def __init__(self, mod):
        self._mod = mod

    def VanillaRnn(self, *args):
        cell = self._mod.VanillaRnn(*args)

        class Wrong:
            def set_weights(self, w_layer, w_iter, bias):
                cell.set_weights(w_layer, w_iter.t().contiguous(), bias)

            def __getattr__(self, name):
                return getattr(cell, name)
        return Wrong()


@needs_onednn
@pytest.mark.parametrize("mode", [onednn_bench.INFER, onednn_bench.TRAIN])
def test_the_check_catches_a_transposed_weight(mode):
    wrong = _TransposedIterWeight(onednn.load())
    shape = onednn_bench.Shape(4, 3, 8)
    with pytest.raises(onednn_bench.Check, match="oneDNN, output: relative error"):
        onednn_bench.check(onednn_bench.dense_variants(wrong, shape, True, mode))
    with pytest.raises(onednn_bench.Check, match="oneDNN x=E.x., output: relative error"):
        onednn_bench.check(onednn_bench.token_variants(wrong, shape, mode))
