"""--out safety: only a provable corpus is replaced, by one atomic swap, under a lock; every build
recovers what an interrupted one left; kills, signals and a full disk never lose the previous corpus."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import stellar_data as sd
from stellar_data.cli import app
from stellar_data.outdir import build_lock, check_out, corpus_problem, recover, swap_in
from tests.conftest import ROOT
from tests.helpers import write_json, write_recipe

DEFAULT_RECIPE = ROOT / "corpus" / "default.toml"
CLI = [sys.executable, "-m", "stellar_data.cli"]
runner = CliRunner()
NEW = sd.load_recipe(DEFAULT_RECIPE).seed
"""The seed of a build of the default recipe: the corpus that replaces the old one (seed 7)."""


def intact_seed(out: Path) -> int:
    """The seed of the complete corpus at `out`: every file its manifest lists, with its checksum,
    and nothing else. Fails when the folder is not a whole corpus."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == {*manifest["files"], "manifest.json"}
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == entry["sha256"], name
    return manifest["seed"]


def beside(out: Path) -> list[str]:
    """What builds left in `--out`'s parent besides `--out` (staging, set-aside folders, locks, journals)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two distinct built corpora of the default recipe (its own seed and seed 7), to copy into place."""
    root = tmp_path_factory.mktemp("corpora")
    built = {seed: sd.build(DEFAULT_RECIPE, out=root / f"seed{seed}", seed=seed, workers=1).path for seed in (NEW, 7)}
    assert intact_seed(built[NEW]) == NEW and intact_seed(built[7]) == 7
    return built


# --- which folders may be replaced ---------------------------------------------------------------


def test_a_folder_with_someone_elses_manifest_is_never_replaced(tmp_path: Path) -> None:
    app_dir = tmp_path / "webapp"
    write_json(app_dir / "manifest.json", {"name": "my app", "icons": []})
    (app_dir / "precious.txt").write_text("keep me")
    result = runner.invoke(app, ["build", str(DEFAULT_RECIPE), "--out", str(app_dir), "--workers", "1"])
    assert result.exit_code == 2
    assert "not a stellar-data corpus" in one_error_line(result.output)
    assert (app_dir / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in app_dir.iterdir()) == ["manifest.json", "precious.txt"]
    assert beside(app_dir) == []


def test_a_corpus_holding_a_file_its_manifest_does_not_list_is_not_replaced(
    tmp_path: Path, corpora: dict[int, Path]
) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(corpora[NEW], out)
    (out / "data" / "my_notes.txt").write_text("mine")
    assert corpus_problem(out) == "holds data/my_notes.txt, which its manifest does not list"
    with pytest.raises(sd.CorpusDirError, match=r"data/my_notes\.txt"):
        sd.build(DEFAULT_RECIPE, out=out, workers=1)
    assert (out / "data" / "my_notes.txt").read_text() == "mine"
    (out / "data" / "my_notes.txt").unlink()
    (out / "extra").mkdir()
    assert corpus_problem(out) == "holds extra/, which its manifest does not list"


@pytest.mark.parametrize(
    "manifest",
    [
        "not json at all",
        json.dumps([1, 2]),
        json.dumps(
            {"format_version": 1, "corpus": "x", "recipe": {"sha256": "0"}, "files": {"../escape": {"sha256": "0"}}}
        ),
        json.dumps({"format_version": 1, "corpus": "x", "files": {}}),
    ],
    ids=["not-json", "not-an-object", "path-outside", "no-recipe"],
)
def test_a_manifest_not_written_by_stellar_data_does_not_make_a_corpus(tmp_path: Path, manifest: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(manifest)
    assert corpus_problem(out) == "its manifest.json was not written by stellar-data"


def test_an_empty_folder_and_a_built_corpus_may_be_replaced(tmp_path: Path, corpora: dict[int, Path]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert corpus_problem(empty) is None
    assert corpus_problem(corpora[NEW]) is None
    out = tmp_path / "corpus"
    shutil.copytree(corpora[7], out)
    assert intact_seed(sd.build(DEFAULT_RECIPE, out=out, workers=1).path) == NEW
    assert beside(out) == []


def test_out_may_not_overlap_the_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    write_json(sources / "data.json", [{"instruction": "a", "input": "", "output": "b"}])
    recipe = write_recipe(
        tmp_path / "recipes" / "r.toml",
        f"""
        [corpus]
        name = "t"
        sources_dir = "{sources}"

        [[sources]]
        name = "general"
        adapter = "alpaca"
        path = "data.json"
        category = "general"
        lang = "en"
        """,
    )
    for out, relation in ((sources, "is"), (sources / "out", "lies inside"), (tmp_path, "contains")):
        result = runner.invoke(app, ["build", str(recipe), "--out", str(out), "--workers", "1"])
        assert result.exit_code == 2
        line = one_error_line(result.output)
        assert f"{relation} the sources folder" in line, line
    assert sorted(p.name for p in sources.iterdir()) == ["data.json"]
    # the recipe's folder: neither replaced nor contained; a corpus beside the recipe is the usual layout
    for out, relation in ((tmp_path / "recipes", "is"), (tmp_path, "contains")):
        with pytest.raises(sd.CorpusDirError, match=relation):
            check_out(out, {}, {"the recipe's folder": tmp_path / "recipes"})
    check_out(tmp_path / "recipes" / "build", {}, {"the recipe's folder": tmp_path / "recipes"})


@pytest.mark.parametrize("out", ["/etc/hostname/sub", "/proc/x/corpus"])
def test_an_unusable_out_parent_is_one_error_line(out: str) -> None:
    result = runner.invoke(app, ["build", str(DEFAULT_RECIPE), "--out", out, "--workers", "1"])
    assert result.exit_code == 2
    assert one_error_line(result.output).startswith(f"error: --out {out}: cannot create")


# --- the lock ------------------------------------------------------------------------------------


def test_a_second_build_into_the_same_out_fails_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    with build_lock(out):
        result = runner.invoke(app, ["build", str(DEFAULT_RECIPE), "--out", str(out), "--workers", "1"])
        assert result.exit_code == 2
        assert f"another build is writing it (pid {os.getpid()}" in one_error_line(result.output)
    assert not out.exists()
    assert beside(out) == []  # the holder removes the lock file
    assert intact_seed(sd.build(DEFAULT_RECIPE, out=out, workers=1).path) == NEW


def test_two_concurrent_cli_builds_one_succeeds_the_other_fails_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    first = subprocess.Popen([*CLI, "build", str(DEFAULT_RECIPE), "--out", str(out), "--workers", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / ".corpus.lock").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    second = subprocess.run([*CLI, "build", str(DEFAULT_RECIPE), "--out", str(out), "--workers", "1"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 2
    assert "another build is writing it" in one_error_line(second.stderr)
    assert intact_seed(out) == NEW and beside(out) == []


# --- the swap, crashes and recovery --------------------------------------------------------------

_SWAP_AND_DIE = """
import os, signal, sys
from pathlib import Path
from stellar_data.outdir import swap_in
staging, out, point, exchange = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
def step(name):
    if name == point:
        os.kill(os.getpid(), signal.SIGKILL)
swap_in(staging, out, exchange=exchange, step=step)
"""


@pytest.mark.parametrize(
    ("exchange", "point"),
    [(True, "exchanged"), (False, "journaled"), (False, "set_aside"), (False, "renamed")],
)
def test_a_build_killed_inside_the_swap_loses_nothing_and_the_next_build_recovers(
    tmp_path: Path, corpora: dict[int, Path], exchange: bool, point: str
) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(corpora[7], out)
    staging = tmp_path / ".corpus.staging-0123abcd"
    shutil.copytree(corpora[NEW], staging)
    killed = subprocess.run([sys.executable, "-c", _SWAP_AND_DIE, str(staging), str(out), point, str(int(exchange))],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if point == "set_aside":  # the only instant without a corpus at --out: the journal says where it is
        assert not out.exists() and ".corpus.swap.json" in beside(out)
    else:
        assert intact_seed(out) == (NEW if point in ("exchanged", "renamed") else 7)
    assert beside(out)  # the killed swap left something behind
    notes = recover(out)
    assert notes, "recovery reports what it did"
    assert intact_seed(out) in (NEW, 7)
    assert beside(out) == []
    rebuilt = sd.build(DEFAULT_RECIPE, out=out, workers=1)
    assert intact_seed(rebuilt.path) == NEW and beside(out) == []


def test_the_fallback_swap_without_an_exchange_rename_replaces_the_corpus(
    tmp_path: Path, corpora: dict[int, Path]
) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(corpora[7], out)
    staging = tmp_path / ".corpus.staging-00000000"
    shutil.copytree(corpora[NEW], staging)
    steps: list[str] = []
    swap_in(staging, out, exchange=False, step=steps.append)
    assert steps == ["journaled", "set_aside", "renamed"]
    assert intact_seed(out) == NEW and beside(out) == []


def test_the_old_two_rename_leftovers_are_recovered_and_cleaned(tmp_path: Path, corpora: dict[int, Path]) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(corpora[7], tmp_path / ".corpus.previous-deadbeef")  # the old code, killed between its renames
    for index in range(3):  # staging folders of killed builds, one half-written
        (tmp_path / f".corpus.staging-0000000{index}" / "_work").mkdir(parents=True)
    (tmp_path / ".corpus.staging-00000000" / "_work" / "records.arrow").write_bytes(b"\0" * 1000)
    (tmp_path / ".other.staging-00000000").mkdir()  # another --out's: not ours to remove
    notes = recover(out)
    assert intact_seed(out) == 7
    assert any("restored" in n for n in notes) and any("removed 3 folder(s)" in n for n in notes)
    assert beside(out) == [] and (tmp_path / ".other.staging-00000000").is_dir()


def _start_build(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "build", str(DEFAULT_RECIPE), "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip


@pytest.mark.parametrize("after", [1.0, 2.5, 4.0])
def test_sigkill_at_any_time_keeps_the_previous_corpus(tmp_path: Path, corpora: dict[int, Path], after: float) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(corpora[7], out)
    build = _start_build(out)
    try:
        build.wait(timeout=after)
    except subprocess.TimeoutExpired:
        build.kill()
    build.communicate(timeout=60)
    assert intact_seed(out) in (NEW, 7)  # the old corpus, or the new one if the build had finished
    again = sd.build(DEFAULT_RECIPE, out=out, workers=1)
    assert intact_seed(again.path) == NEW and beside(out) == []


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_removes_the_staging_folder_and_exits_in_one_line(
    tmp_path: Path, corpora: dict[int, Path], signum: signal.Signals, status: int
) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(corpora[7], out)
    build = _start_build(out)
    deadline = time.monotonic() + 60
    while not any(".staging-" in name for name in beside(out)) and time.monotonic() < deadline:
        time.sleep(0.02)
    build.send_signal(signum)
    _, err = build.communicate(timeout=60)
    assert build.returncode == status, err
    assert one_error_line(err) == f"error: interrupted ({signum.name})"
    assert intact_seed(out) == 7 and beside(out) == []


# --- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 3 MB tmpfs mounted for the test (root only; CI here runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_error_line_and_keeps_the_previous_corpus(
    small_disk: Path, corpora: dict[int, Path]
) -> None:
    out = small_disk / "corpus"
    shutil.copytree(corpora[7], out)
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * max(0, free - 150_000))  # room for part of a corpus only
    result = runner.invoke(app, ["build", str(DEFAULT_RECIPE), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert line.startswith(f"error: no space left on the device of {small_disk} while writing "), line
    assert "written before it filled" in line and f"{out} is unchanged" in line
    assert intact_seed(out) == 7 and beside(out) == []
