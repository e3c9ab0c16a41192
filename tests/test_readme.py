"""Every code block of the project's markdown files runs as pasted.

A python block runs as a script, a bash block under `bash -e -o pipefail`, each in a fresh
process in its own empty folder, with this interpreter's folder first on PATH (so `python`,
`rnnfast` and `torchrun` are those under test) and one torch thread. A `text` block is output
and never runs. Any other block, and one that cannot run here (it needs a GPU or a second
process, or takes longer than the normal suite allows), carries a skip marker with its reason
(tests/support/markdown_blocks.py), which the skip reports.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.markdown_blocks import blocks

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
RUNNERS = {"python": [sys.executable], "bash": ["bash", "-e", "-o", "pipefail"]}
OUTPUT = {"text"}
TIMEOUT_S = 600

CODE = [b for path in MARKDOWN for b in blocks(path) if b.lang not in OUTPUT]


@pytest.mark.parametrize("block", CODE, ids=lambda b: b.name)
def test_block_runs_as_pasted(block, tmp_path):
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    assert block.lang in RUNNERS, (
        f"{block.name}: no runner for a {block.lang or 'plain'} block; mark it "
        "`<!-- readme-test: skip (why) -->`, or make it ```text if it is output")
    script = tmp_path / f"block.{block.lang}"
    script.write_text(block.text)
    # One thread: the blocks share the machine with the rest of the suite, and 2-thread parallel
    # regions on a busy machine stall for scheduler ticks (the training block took minutes).
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    proc = subprocess.run(RUNNERS[block.lang] + [str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (f"{block.name} exited with status {proc.returncode}:\n"
                                  f"{block.text}\n--- stdout\n{proc.stdout[-4000:]}\n"
                                  f"--- stderr\n{proc.stderr[-4000:]}")


def test_layout_names_every_tracked_file():
    """docs/layout.md, the project as a file tree, keeps up with the files (a git checkout only:
    the installed sdist has no history to ask)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files to hold docs/layout.md to")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    layout = (ROOT / "docs" / "layout.md").read_text()
    missing = [p for p in tracked if Path(p).name not in layout]
    assert not missing, f"docs/layout.md does not name {missing}"
