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
_CHILD = f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {_GRANDCHILD!r}]); p.wait()"


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


def test_repeated_runs_report_the_median_wall_and_the_highest_peak() -> None:
    runs = [
        run.Run("ours-core", 100, wall_s=wall, peak_rss_mb=peak, largest_process_mb=peak - 1, returncode=0, kept=90)
        for wall, peak in ((12.0, 500.0), (9.0, 520.0), (30.0, 480.0))
    ]
    row = run.combined(runs)
    assert (row.wall_s, row.peak_rss_mb, row.largest_process_mb) == (12.0, 520.0, 519.0)
    assert row.walls_s == [12.0, 9.0, 30.0] and row.returncode == 0 and row.kept == 90


def test_a_failed_repeat_fails_the_row() -> None:
    good = run.Run("naive-core", 100, wall_s=5.0, peak_rss_mb=1.0, largest_process_mb=1.0, returncode=0, kept=90)
    row = run.combined([good, run.Run("naive-core", 100, 1.0, 1.0, 1.0, returncode=2)])
    assert row.returncode == 2 and row.kept == 90
