"""`make bench`: corpus build throughput and memory, ours against a naive script and datatrove.

    .venv/bin/python bench/run.py [--sizes 100000,1000000] [--workers 2] [--seed 1] [--repeats 3] [--skip-peers]

For each N: generate the synthetic sources (bench/generate.py, cached by (N, seed)), then run each
tool as a subprocess `--repeats` times (tools interleaved; the median wall time is reported, with
every run's), sampling the summed RSS of its whole process tree every ~20 ms:

- ours, core chain     `stellar-data build core.toml` (normalize + OpenCC, validate, dedup, split, mix, write)
- naive, core chain    bench/naive_build.py
- datatrove, core chain bench/datatrove_build.py (needs the `bench` extra)
- ours, every step     `stellar-data build recipe.toml` on the real-format sources

The three core-chain tools read the same 4 JSONL files. Writes build/bench/results.json (runs of
earlier invocations at other sizes are kept), prints a markdown table and draws
docs/bench_time_vs_n.png. Exits non-zero when a tool fails or the kept counts do not reconcile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE_S = 0.02
TREE_REFRESH_S = 0.25
CORE_TOOLS = ("ours-core", "naive-core", "datatrove-core")
TOOLS = (*CORE_TOOLS, "ours-full")
LABELS = {
    "ours-core": "ours, core chain",
    "naive-core": "naive script, core chain",
    "datatrove-core": "datatrove, core chain",
    "ours-full": "ours, every step",
}


@dataclass
class Run:
    tool: str
    records: int
    wall_s: float
    peak_rss_mb: float
    """Peak of the summed RSS of the process and all its descendants."""
    largest_process_mb: float
    """Peak RSS of the largest single process of the tree."""
    returncode: int
    kept: int | None = None
    """Records kept after exact dedup (core chain), for reconciling the tools."""
    timings_s: dict[str, float] = field(default_factory=dict)
    """ours: the build's phases (ingest, global steps, write) from its manifest."""
    global_steps_s: dict[str, float] = field(default_factory=dict)
    """ours: each global step (dedup, neardup, holdout, decontaminate, split, expand, mix)."""
    steps: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    walls_s: list[float] = field(default_factory=list)
    """Every run's wall time, in run order, when the tool ran more than once (`wall_s` is their median)."""

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0


class TreeRss:
    """Samples the summed RSS of a process and its descendants.

    The process tree is listed again only every TREE_REFRESH_S (listing scans all of /proc); reading
    the known processes' RSS every SAMPLE_S is cheap. At a full scan every 20 ms the sampler took ~10%
    of a core, which the 2-core build under measurement would lose.
    """

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.processes: list[psutil.Process] = [self.root]
        self.listed_at = 0.0

    def sample(self) -> tuple[int, int]:
        """(summed RSS, largest RSS) now; processes may vanish meanwhile."""
        if time.perf_counter() - self.listed_at > TREE_REFRESH_S:
            try:
                self.processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return 0, 0
            self.listed_at = time.perf_counter()
        total = largest = 0
        for process in self.processes:
            try:
                rss = process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            largest = max(largest, rss)
        return total, largest


def measure(command: list[str], log: Path) -> tuple[float, int, int, int]:
    """Run a command; returns (wall seconds, peak tree RSS, peak single-process RSS, return code)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        tree = TreeRss(child.pid)
        peak = largest = 0
        while child.poll() is None:
            total, single = tree.sample()
            peak, largest = max(peak, total), max(largest, single)
            time.sleep(SAMPLE_S)
        wall = time.perf_counter() - start
    return wall, peak, largest, child.returncode


def command_for(tool: str, data: Path, out: Path, workers: int, seed: int) -> list[str]:
    python = str(BIN / "python")
    if tool == "ours-core":
        return [str(BIN / "stellar-data"), "build", str(data / "core.toml"), "--sources", str(data),
                "--out", str(out), "--workers", str(workers)]  # fmt: skip
    if tool == "ours-full":
        return [str(BIN / "stellar-data"), "build", str(data / "recipe.toml"), "--sources", str(data),
                "--out", str(out), "--workers", str(workers)]  # fmt: skip
    if tool == "naive-core":
        return [python, str(ROOT / "bench" / "naive_build.py"), str(data), "--out", str(out), "--seed", str(seed)]
    return [python, str(ROOT / "bench" / "datatrove_build.py"), str(data), "--out", str(out), "--tasks", str(workers)]


def read_counts(run: Run, out: Path) -> None:
    """Kept-after-dedup count (and, for ours, per-step times and counts) from the tool's output."""
    if run.tool.startswith("ours"):
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        run.timings_s = manifest["volatile"]["timings_s"]
        run.global_steps_s = manifest["volatile"].get("global_steps_s", {})
        run.steps = manifest["steps"]
        run.kept = sum(s["kept"] for s in manifest["steps"] if s["step"] == "dedup")
    else:
        run.kept = json.loads((out / "summary.json").read_text(encoding="utf-8"))["kept"]


def run_tool(tool: str, records: int, data: Path, work: Path, workers: int, seed: int) -> Run:
    out = work / tool
    log = work / f"{tool}.log"
    shutil.rmtree(out, ignore_errors=True)  # a previous run's output: removing it is no part of the work timed
    print(f"  {LABELS[tool]} ...", end="", flush=True)
    wall, peak, largest, code = measure(command_for(tool, data, out, workers, seed), log)
    run = Run(tool, records, round(wall, 2), round(peak / 2**20, 1), round(largest / 2**20, 1), code,
              log=str(log.relative_to(ROOT) if log.is_relative_to(ROOT) else log))  # fmt: skip
    if code == 0:
        read_counts(run, out)
        print(f" {wall:.1f} s, {run.peak_rss_mb / 1024:.2f} GB")
    else:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        print(f" FAILED (exit {code}), see {log}:\n    " + "\n    ".join(tail))
    return run


def combined(runs: list[Run]) -> Run:
    """A tool's repeated runs at one size as one row: the median wall time (this VM's wall times vary
    by 15-25% between identical runs), the highest peak RSS, the last successful run's counts and
    step times; a failure in any run fails the row."""
    good = [r for r in runs if r.returncode == 0]
    last = good[-1] if good else runs[-1]
    return replace(
        last,
        wall_s=round(statistics.median(r.wall_s for r in runs), 2),
        peak_rss_mb=max(r.peak_rss_mb for r in runs),
        largest_process_mb=max(r.largest_process_mb for r in runs),
        returncode=next((r.returncode for r in runs if r.returncode != 0), 0),
        walls_s=[r.wall_s for r in runs],
    )


def reconcile(runs: list[Run]) -> list[str]:
    """Problems: the core-chain tools must keep the same number of records after exact dedup.

    They agree by construction of the input: duplicates are byte-exact copies or traditional twins
    (equal after OpenCC for every tool), and no two generated records differ only in what our
    normalization folds and the peers' `strip()` does not (inner odd spaces, invisible characters).
    """
    problems = []
    by_size: dict[int, dict[str, Run]] = {}
    for run in runs:
        by_size.setdefault(run.records, {})[run.tool] = run
    for records, tools in sorted(by_size.items()):
        kept = {tool: tools[tool].kept for tool in CORE_TOOLS if tool in tools and tools[tool].returncode == 0}
        if len(set(kept.values())) > 1:
            problems.append(f"N={records}: kept after dedup differs: {kept}")
    return problems


def _gb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB"


def markdown(runs: list[Run]) -> str:
    lines = [
        "| N | tool | wall | records/s | peak RSS (tree) | largest process | kept after dedup | wall / ours "
        "| RSS / ours |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in sorted(runs, key=lambda r: (r.records, TOOLS.index(r.tool))):
        ours = next((r for r in runs if r.records == run.records and r.tool == "ours-core"), None)
        ratio = f"{run.wall_s / ours.wall_s:.2f}x" if ours and ours.wall_s else ""
        rss_ratio = f"{run.peak_rss_mb / ours.peak_rss_mb:.2f}x" if ours and ours.peak_rss_mb else ""
        wall = f"{run.wall_s:.1f} s" if run.returncode == 0 else f"failed (exit {run.returncode})"
        if run.returncode == 0 and len(run.walls_s) > 1:
            wall += " (" + ", ".join(f"{w:.1f}" for w in run.walls_s) + ")"
        lines.append(
            f"| {run.records:,} | {LABELS[run.tool]} | {wall} | {run.records_per_s:,.0f} | {_gb(run.peak_rss_mb)} "
            f"| {_gb(run.largest_process_mb)} | {'' if run.kept is None else f'{run.kept:,}'} | {ratio} | {rss_ratio} |"
        )
    return "\n".join(lines)


def steps_markdown(runs: list[Run]) -> str:
    """Where our builds spend their time: the phases, then each global step."""
    ours = sorted((r for r in runs if r.tool.startswith("ours") and r.timings_s), key=lambda r: (r.records, r.tool))
    names = sorted({name for r in ours for name in r.global_steps_s}, key=lambda n: STEP_ORDER.index(n))
    lines = [
        "| N | tool | ingest | global steps | write | total |" + "".join(f" {n} |" for n in names),
        "|---|---|---|---|---|---|" + "---|" * len(names),
    ]
    for run in ours:
        phases = " | ".join(f"{run.timings_s.get(k, 0):.1f} s" for k in ("ingest", "global_steps", "write", "total"))
        steps = "".join(f" {run.global_steps_s[n]:.2f} s |" if n in run.global_steps_s else " |" for n in names)
        lines.append(f"| {run.records:,} | {LABELS[run.tool]} | {phases} |{steps}")
    return "\n".join(lines)


STEP_ORDER = ["load", "dedup", "neardup", "holdout", "decontaminate", "split", "expand", "mix"]


def plot(runs: list[Run], path: Path, workers: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for tool in TOOLS:
        points = sorted((r.records, r.wall_s) for r in runs if r.tool == tool and r.returncode == 0)
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=LABELS[tool])
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("input records (N)")
    axes.set_ylabel("wall time (s)")
    axes.set_title(f"Corpus build time vs N ({workers} workers)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def load_previous(path: Path) -> tuple[list[Run], dict[int, dict[str, Any]]]:
    """Runs and generation times of earlier invocations (other sizes are kept in results.json)."""
    if not path.is_file():
        return [], {}
    document = json.loads(path.read_text(encoding="utf-8"))
    runs = [Run(**{k: v for k, v in r.items() if k != "records_per_s"}) for r in document.get("runs", [])]
    return runs, {int(k): v for k, v in document.get("generation", {}).items()}


def save(path: Path, runs: list[Run], generation: dict[int, dict[str, Any]], workers: int, seed: int) -> None:
    document = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "workers": workers,
        "seed": seed,
        "generation": {str(k): v for k, v in sorted(generation.items())},
        "runs": [asdict(r) | {"records_per_s": round(r.records_per_s, 1)} for r in runs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Corpus build benchmark: ours vs a naive script vs datatrove.")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated N (default 100000,1000000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-peers", action="store_true", help="only ours (core chain and every step)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and size; the median is reported")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench_time_vs_n.png")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    tools = ("ours-core", "ours-full") if args.skip_peers else TOOLS
    results_path = args.out / "results.json"
    previous, generation = load_previous(results_path)
    runs: list[Run] = []
    for records in sizes:
        start = time.perf_counter()
        data = generate(records, args.seed)
        generation[records] = {"folder": str(data.relative_to(ROOT)), "seconds": round(time.perf_counter() - start, 1)}
        print(f"N={records:,}: sources in {data} ({generation[records]['seconds']} s, cached if ~0)")
        each: dict[str, list[Run]] = {tool: [] for tool in tools}
        work = args.out / "runs" / f"n{records}"
        for repeat in range(args.repeats):  # tools interleaved: a slow spell of the VM hits them all
            if args.repeats > 1:
                print(f" run {repeat + 1} of {args.repeats}")
            for tool in tools:
                each[tool].append(run_tool(tool, records, data, work, args.workers, args.seed))
        runs += [combined(each[tool]) for tool in tools]
    fresh = {(r.tool, r.records) for r in runs}
    merged = [r for r in previous if (r.tool, r.records) not in fresh] + runs
    save(results_path, merged, generation, args.workers, args.seed)
    print()
    print(markdown(merged))
    print()
    print(steps_markdown(merged))
    plot(merged, args.plot, args.workers)
    print(f"\nresults: {results_path}\nplot: {args.plot}")
    problems = reconcile(runs)
    for problem in problems:
        print(f"error: {problem}")
    failed = [r for r in runs if r.returncode != 0]
    return 1 if problems or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
