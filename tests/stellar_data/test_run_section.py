"""`[run]` says how a build runs, never what it builds: the recipe's hash, its recorded text, the card
and every data file are the same whatever it says, and `--workers` overrides its `workers`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import stellar_data as sd
from stellar_data import RecipeError, load_recipe
from tests.helpers import write_json, write_recipe

BODY = """
[corpus]
name = "t"
seed = 3
sources_dir = "src"
{middle}
# the sources
[[sources]]
name = "general"
adapter = "alpaca"
path = "data.json"
category = "general"
lang = "en"
{end}"""
RUN = '\n[run]\nworkers = 1\nexecutor = "local"  # one process\n'


def recipe(tmp_path: Path, name: str, middle: str = "", end: str = "") -> Path:
    """`<name>/recipe.toml` (one file name: the card names the recipe), reading tmp_path/src."""
    (tmp_path / name).mkdir(exist_ok=True)
    return write_recipe(
        tmp_path / name / "recipe.toml", BODY.format(middle=middle, end=end).replace('"src"', '"../src"')
    )


def test_run_is_left_out_of_the_hash_and_the_recorded_text(tmp_path: Path) -> None:
    plain = load_recipe(recipe(tmp_path, "plain"))
    for where in ({"middle": RUN}, {"end": RUN}):
        run = load_recipe(recipe(tmp_path, "run", **where))
        assert run.run == sd.recipe.RunConfig(workers=1, executor="local")
        assert (run.sha256, run.text) == (plain.sha256, plain.text)
        assert "[run]" not in run.text and "workers" not in run.text
    assert plain.run == sd.recipe.RunConfig()


def test_run_written_as_dotted_keys_is_one_error(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.toml", "run.workers = 2\n" + BODY.format(middle="", end=""))
    with pytest.raises(RecipeError, match=r"run: write it as a table of its own"):
        load_recipe(path)


def test_an_unknown_executor_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"run.executor"):
        load_recipe(recipe(tmp_path, "r", middle='[run]\nexecutor = "ray"\n'))


def test_two_runs_with_other_run_settings_write_the_same_bytes(tmp_path: Path) -> None:
    records = [{"instruction": f"Say {n}.", "input": "", "output": str(n)} for n in range(40)]
    write_json(tmp_path / "src" / "data.json", records)
    one = sd.build(recipe(tmp_path, "r", middle="\n[run]\nworkers = 1\n"), out=tmp_path / "one")
    two = sd.build(recipe(tmp_path, "r", middle="\n[run]\nworkers = 2\n"), out=tmp_path / "two")  # same path
    files = sorted(p.relative_to(one.path) for p in one.path.rglob("*") if p.is_file())
    assert Path("data/train-00000-of-00001.parquet") in files and Path("README.md") in files
    for name in files:
        if name.name != "manifest.json":
            assert (one.path / name).read_bytes() == (two.path / name).read_bytes(), name
    manifests = [json.loads((c.path / "manifest.json").read_text(encoding="utf-8")) for c in (one, two)]
    assert [m["volatile"]["workers"] for m in manifests] == [1, 2]  # the recipe's workers were used
    assert [m["volatile"]["executor"] for m in manifests] == ["local", "local"]
    for m in manifests:
        del m["volatile"]
    assert manifests[0] == manifests[1]


def test_the_workers_argument_overrides_the_recipe(tmp_path: Path) -> None:
    write_json(tmp_path / "src" / "data.json", [{"instruction": "Hi.", "input": "", "output": "Hello."}])
    built = sd.build(recipe(tmp_path, "r", middle="[run]\nworkers = 2\n"), out=tmp_path / "c", workers=1)
    assert built.manifest["volatile"]["workers"] == 1
