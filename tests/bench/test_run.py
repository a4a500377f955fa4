"""The bench's memory sampler: the summed RSS of a process tree, grandchildren included."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import run

MB = 1 << 20
_GRANDCHILD = "import time; block = bytearray(120 << 20); print('ready', flush=True); time.sleep(30)"
_CHILD = (
    "import subprocess, sys, time; "
    f"p = subprocess.Popen([sys.executable, '-c', {_GRANDCHILD!r}]); p.wait()"
)


def test_tree_rss_counts_every_descendant() -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD])
    try:
        tree = run.TreeRss(child.pid)
        deadline = time.perf_counter() + 20
        total = largest = 0
        while largest < 120 * MB and time.perf_counter() < deadline:
            time.sleep(0.05)
            total, largest = tree.sample()
        assert largest >= 120 * MB  # the grandchild's block, though the sampler was given the child
        assert total > largest  # the child's own RSS is added
        assert len(tree.processes) == 2
    finally:
        child.kill()
        for process in tree.processes[1:]:
            process.kill()
        child.wait()


def test_tree_rss_of_a_finished_process_is_zero() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tree = run.TreeRss(child.pid)
    child.wait()
    time.sleep(0.3)  # past TREE_REFRESH_S: the tree is listed again
    assert tree.sample() == (0, 0)
