"""The benchmark suite's quick mode runs end to end and writes all three outputs.

Timings are never asserted on: CI machines are noisy. What is checked is the shape of what the
suite produces, so the command in docs/benchmarks.md keeps working.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_KEYS = {"meta", "sizes", "ceiling", "timings", "compile", "memory", "checks", "recipe",
            "targets", "skipped"}
TIMING_KEYS = {"threads", "level", "mode", "label", "size", "variant", "flops", "median_s",
               "q1_s", "q3_s", "n", "gflops", "ceiling_fraction", "floor_s", "speedup_vs_eager"}


def test_quick_mode_writes_table_json_and_png(tmp_path):
    pytest.importorskip("matplotlib")
    out_json, out_png, out_md = tmp_path / "bench.json", tmp_path / "bench.png", tmp_path / "b.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", "--quick", "--json", str(out_json),
         "--png", str(out_png), "--md", str(out_md)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]

    table = proc.stdout
    assert "| target | measured | required | status |" in table
    assert "## The recurrence alone" in table and "## A whole LMModel4 step" in table
    assert "| size (B T H) | mode | floor | fused | eager |" in table
    assert out_md.read_text().strip() == table.strip()

    res = json.loads(out_json.read_text())
    assert TOP_KEYS <= set(res)
    assert res["meta"]["mode"] == "quick"
    threads = {r["threads"] for r in res["timings"]}
    assert 1 in threads and res["meta"]["default_threads"] in threads
    for r in res["timings"]:
        assert TIMING_KEYS <= set(r), set(r) ^ TIMING_KEYS
        assert r["median_s"] > 0 and r["n"] >= 1
    seen = {(r["level"], r["mode"], r["variant"]) for r in res["timings"]}
    for level in ("cell", "model"):
        for mode in ("fwd", "fwd+bwd"):
            assert {(level, mode, "fused"), (level, mode, "eager")} <= seen
    assert {m["variant"] for m in res["memory"]} >= {"fused", "eager"}
    assert all(m["saved_bytes"] > 0 and m["step_peak_bytes"] > 0 for m in res["memory"])
    assert {t["status"] for t in res["targets"]} <= {"PASS", "MISS", "NOT MEASURED"}
    assert len(res["targets"]) == 8
    assert res["recipe"]["fused"]["epoch_s"] and res["recipe"]["reference"]["epoch_s"]

    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
