"""`stellar-data sources fetch` against a loopback mirror of raw.githubusercontent.com that serves
../shared/sources: pins, verified downloads, kept files, refused tampering, resumed downloads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from typer.testing import CliRunner

import stellar_data as sd
from stellar_data.cli import app
from stellar_data.errors import SourceFileError
from stellar_data.fetch import Fetched, apply_mirrors, fetch_file, fetch_sources
from stellar_data.recipe import FetchSpec, Recipe, load_recipe
from tests.conftest import ROOT
from tests.http_mirror import UPSTREAM, Mirror, Request, serve

RECIPE = ROOT / "corpus" / "stellarspeak.toml"
runner = CliRunner()

GSM8K = "grade-school-math/grade_school_math/data/train.jsonl"  # 4 MB: more than one read chunk
IDENTITY = "LLaMA-Factory/data/identity.json"
ASTRO_EN4 = "Astro-QA/data/EN/single-select multi choice(4)_EN.xlsx"  # spaces and parentheses


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return sha256(path.read_bytes())


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return load_recipe(RECIPE)


@pytest.fixture(scope="module")
def specs(recipe: Recipe) -> dict[str, FetchSpec]:
    return {spec.path: spec for source in recipe.sources for spec in source.fetch}


@pytest.fixture(scope="module")
def _server(shared_sources: Path) -> Iterator[Mirror]:
    with serve(shared_sources) as mirror:
        yield mirror


@pytest.fixture
def mirror(_server: Mirror) -> Iterator[Mirror]:
    _server.reset()
    yield _server
    _server.reset()


def request_path(url: str) -> str:
    """The decoded path a (mirrored) URL asks the server for."""
    return unquote(urlsplit(url).path)


def part_of(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def covers(declared: str, pinned: str) -> bool:
    """The pinned file is the declared path or lies in the declared folder."""
    return pinned == declared or pinned.startswith(declared.rstrip("/") + "/")


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# --- the pins ------------------------------------------------------------------------------------


def test_every_recipe_pin_names_a_shared_file_with_its_sha256(
    recipe: Recipe, specs: dict[str, FetchSpec], shared_sources: Path, _server: Mirror
) -> None:
    entries = [spec for source in recipe.sources for spec in source.fetch]
    assert len(entries) == len(specs) >= 16  # no path pinned twice; the 16 upstream files at least
    for source in recipe.sources:
        assert source.fetch, f"source {source.name} has no [[sources.fetch]] entries"
        for declared in source.paths:  # every declared source path is covered by its own pins
            assert any(covers(declared, s.path) for s in source.fetch), f"{source.name}: {declared} is not pinned"
    # Every other file the build reads from the sources folder (decontamination eval sets) is pinned too.
    decontaminate = getattr(recipe, "decontaminate", None)
    for eval_set in getattr(decontaminate, "eval_sets", ()) or ():
        assert any(covers(eval_set.path, p) for p in specs), f"eval set {eval_set.name}: {eval_set.path} is not pinned"
    for spec in entries:
        assert spec.url is not None and spec.url.startswith(UPSTREAM), spec.url
        local = shared_sources / spec.path
        assert local.is_file(), spec.path
        assert sha256_file(local) == spec.sha256, f"{spec.path}: pinned sha256 is wrong"
        # The URL (owner/repo/commit + path, percent-encoded) names this very file.
        served = _server.local_path(request_path(apply_mirrors(spec.url, _server.mirrors)))
        assert served == local, f"{spec.url} does not name {spec.path}"
    # Every Astro-QA workbook of both languages is pinned (the adapter reads the whole folder).
    workbooks = {p.relative_to(shared_sources).as_posix() for p in (shared_sources / "Astro-QA/data").rglob("*.xlsx")}
    assert workbooks == {p for p in specs if p.startswith("Astro-QA/")}


# --- fetch then build ----------------------------------------------------------------------------


def test_fetch_then_build_gives_the_corpus_built_from_the_shared_sources(
    mirror: Mirror, specs: dict[str, FetchSpec], shared_sources: Path, tmp_path: Path
) -> None:
    fetched = tmp_path / "sources"
    result = runner.invoke(
        app, ["sources", "fetch", str(RECIPE), "--sources", str(fetched), "--mirror", mirror.mirror_option]
    )
    assert result.exit_code == 0, result.output
    n = len(specs)
    assert f"{n} files in" in result.output and f"{n} downloaded" in result.output, result.output
    assert tree(fetched) == set(specs)  # exactly the pinned files, no .part left behind
    for path, spec in specs.items():
        assert sha256_file(fetched / path) == spec.sha256
    assert len(mirror.requests) == n and all(r.range is None for r in mirror.requests)
    assert {r.path for r in mirror.requests} == {
        request_path(apply_mirrors(s.url, mirror.mirrors)) for s in specs.values()
    }

    sd.build(RECIPE, out=tmp_path / "from_fetch", sources=fetched, workers=1)
    sd.build(RECIPE, out=tmp_path / "from_shared", sources=shared_sources, workers=1)

    def data_files(root: Path) -> dict[str, str]:
        files = [*root.glob("data/*.parquet"), *root.glob("astro_qa_heldout/*"), root / "train.json",
                 root / "quarantine.parquet"]  # fmt: skip
        return {f.relative_to(root).as_posix(): sha256_file(f) for f in files}

    files_a, files_b = data_files(tmp_path / "from_fetch"), data_files(tmp_path / "from_shared")
    assert any(name.startswith("data/train-") for name in files_a)
    assert any(name.startswith("astro_qa_heldout/") for name in files_a)
    assert files_a == files_b

    def manifest(root: Path) -> dict:
        m = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        m.pop("volatile")
        return m

    # Same inputs (per-file sha256 recorded by the build), same counts, same everything not volatile.
    assert manifest(tmp_path / "from_fetch") == manifest(tmp_path / "from_shared")


def test_a_second_fetch_keeps_every_file_without_a_request(
    mirror: Mirror, recipe: Recipe, specs: dict[str, FetchSpec], tmp_path: Path
) -> None:
    first = fetch_sources(recipe, tmp_path, mirrors=mirror.mirrors)
    assert [f.action for f in first] == ["downloaded"] * len(specs)
    mirror.reset()
    second = fetch_sources(recipe, tmp_path, mirrors=mirror.mirrors)
    assert [f.action for f in second] == ["kept"] * len(specs)
    assert {f.path: f.bytes for f in second} == {p: (tmp_path / p).stat().st_size for p in specs}
    assert mirror.requests == []
    # The command says so too.
    result = runner.invoke(
        app, ["sources", "fetch", str(RECIPE), "--sources", str(tmp_path), "--mirror", mirror.mirror_option]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(specs)} files in" in result.output and f"{len(specs)} kept" in result.output, result.output
    assert mirror.requests == []


# --- refusals ------------------------------------------------------------------------------------


def test_a_tampered_download_is_refused_naming_both_hashes(
    mirror: Mirror, specs: dict[str, FetchSpec], shared_sources: Path, tmp_path: Path
) -> None:
    spec = specs[ASTRO_EN4]
    real = (shared_sources / spec.path).read_bytes()
    tampered = real[:1000] + bytes([real[1000] ^ 0xFF]) + real[1001:]
    mirror.tamper[request_path(apply_mirrors(spec.url, mirror.mirrors))] = tampered
    with pytest.raises(SourceFileError) as caught:
        fetch_file(spec, tmp_path, mirrors=mirror.mirrors)
    message = str(caught.value)
    assert spec.path in message and spec.sha256 in message and sha256(tampered) in message, message
    target = tmp_path / spec.path
    assert not target.exists() and not part_of(target).exists()
    assert len(mirror.requests) == 1  # it was downloaded, then refused

    # The command: exit 2 with a one-line error naming the file and both hashes.
    result = runner.invoke(
        app, ["sources", "fetch", str(RECIPE), "--sources", str(tmp_path / "cli"), "--mirror", mirror.mirror_option]
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and spec.path in result.output, result.output
    assert spec.sha256 in result.output and sha256(tampered) in result.output, result.output
    assert not (tmp_path / "cli" / spec.path).exists() and not part_of(tmp_path / "cli" / spec.path).exists()


def test_a_404_names_the_file_and_the_url(mirror: Mirror, specs: dict[str, FetchSpec], tmp_path: Path) -> None:
    real = specs[GSM8K]
    missing = FetchSpec(
        "grade-school-math/grade_school_math/data/missing.jsonl",
        real.sha256,
        UPSTREAM + "openai/grade-school-math/3101c7d5/grade_school_math/data/missing.jsonl",
    )
    with pytest.raises(SourceFileError) as caught:
        fetch_file(missing, tmp_path, mirrors=mirror.mirrors)
    message = str(caught.value)
    assert missing.path in message and "404" in message, message
    assert apply_mirrors(missing.url, mirror.mirrors) in message, message
    assert not (tmp_path / missing.path).exists() and not part_of(tmp_path / missing.path).exists()
    # An existing file at a commit other than the pinned one is not served either.
    wrong_commit = FetchSpec(real.path, real.sha256, real.url.replace("/3101c7d5/", "/deadbeef/"))
    with pytest.raises(SourceFileError, match="404"):
        fetch_file(wrong_commit, tmp_path, mirrors=mirror.mirrors)
    assert not (tmp_path / real.path).exists()


# --- resuming and replacing ----------------------------------------------------------------------


@pytest.mark.parametrize("have", ["half", "all"])
def test_a_partial_download_resumes_with_a_range_request(
    have: str, mirror: Mirror, specs: dict[str, FetchSpec], shared_sources: Path, tmp_path: Path
) -> None:
    spec = specs[GSM8K]
    real = (shared_sources / spec.path).read_bytes()
    start = len(real) // 2 if have == "half" else len(real)
    target = tmp_path / spec.path
    target.parent.mkdir(parents=True)
    part_of(target).write_bytes(real[:start])
    calls: list[tuple[str, int, int]] = []
    fetched = fetch_file(spec, tmp_path, mirrors=mirror.mirrors, progress=lambda *a: calls.append(a))
    assert fetched == Fetched(spec.path, "resumed", len(real))
    assert mirror.requests == [Request(request_path(apply_mirrors(spec.url, mirror.mirrors)), f"bytes={start}-")]
    assert sha256_file(target) == spec.sha256 and not part_of(target).exists()
    if have == "half":  # progress counts from the resumed offset up to the whole file
        assert calls and calls[-1] == (spec.path, len(real), len(real))
        assert all(done > start for _, done, _ in calls)


def test_a_download_the_server_cuts_short_is_resumed_not_discarded(
    mirror: Mirror, specs: dict[str, FetchSpec], shared_sources: Path, tmp_path: Path
) -> None:
    """The connection closes after half the announced Content-Length: the bytes received stay in
    `<path>.part` and the next attempt (this call retrying, or the next run) asks for the rest."""
    spec = specs[GSM8K]
    real = (shared_sources / spec.path).read_bytes()
    half = len(real) // 2
    served = request_path(apply_mirrors(spec.url, mirror.mirrors))
    mirror.cut[served] = half
    target = tmp_path / spec.path
    try:
        first: Fetched | None = fetch_file(spec, tmp_path, mirrors=mirror.mirrors, timeout=10)
    except SourceFileError as exc:
        first = None
        assert spec.path in str(exc)
        assert part_of(target).is_file(), f"the {half} bytes received were discarded ({exc})"
        assert part_of(target).read_bytes() == real[:half]
        assert not target.exists()
        second = fetch_file(spec, tmp_path, mirrors=mirror.mirrors, timeout=10)
        assert second.action == "resumed"
    else:
        assert first.action == "resumed"
    assert mirror.requests[0] == Request(served, None)
    assert mirror.requests[-1] == Request(served, f"bytes={half}-")
    assert sha256_file(target) == spec.sha256 and not part_of(target).exists()


def test_a_stale_local_file_is_replaced_by_the_verified_download(
    mirror: Mirror, specs: dict[str, FetchSpec], shared_sources: Path, tmp_path: Path
) -> None:
    spec = specs[IDENTITY]
    real = (shared_sources / spec.path).read_bytes()
    target = tmp_path / spec.path
    target.parent.mkdir(parents=True)
    stale = real.replace(b"{{name}}", b"{{nom}}")  # an edited copy, same shape
    assert stale != real
    target.write_bytes(stale)
    fetched = fetch_file(spec, tmp_path, mirrors=mirror.mirrors)
    assert fetched == Fetched(spec.path, "downloaded", len(real))
    assert target.read_bytes() == real and not part_of(target).exists()
    assert mirror.requests == [Request(request_path(apply_mirrors(spec.url, mirror.mirrors)), None)]
    # Through the command too, for every file at once: all stale files are replaced.
    for path in specs:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"stale")
    result = runner.invoke(
        app, ["sources", "fetch", str(RECIPE), "--sources", str(tmp_path), "--mirror", mirror.mirror_option]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(specs)} downloaded" in result.output, result.output
    assert all(sha256_file(tmp_path / p) == s.sha256 for p, s in specs.items())


# --- mirrors -------------------------------------------------------------------------------------


def test_apply_mirrors_rewrites_only_matching_prefixes() -> None:
    mirrors = {UPSTREAM: "http://127.0.0.1:8000/", "https://huggingface.co/": "http://hf.local/"}
    url = UPSTREAM + "openai/grade-school-math/3101c7d5/grade_school_math/data/train.jsonl"
    assert (
        apply_mirrors(url, mirrors)
        == "http://127.0.0.1:8000/openai/grade-school-math/3101c7d5/grade_school_math/data/train.jsonl"
    )
    assert apply_mirrors("https://huggingface.co/x/y", mirrors) == "http://hf.local/x/y"
    assert (
        apply_mirrors("https://github.com/openai/grade-school-math", mirrors)
        == "https://github.com/openai/grade-school-math"
    )
    # Only a prefix counts, not the same text elsewhere in the URL, and not another host.
    inner = "https://example.org/?u=" + url
    assert apply_mirrors(inner, mirrors) == inner
    assert apply_mirrors("http://raw.githubusercontent.com/a", mirrors) == "http://raw.githubusercontent.com/a"
    assert apply_mirrors("https://raw.githubusercontent.com.evil/a", {"https://raw.githubusercontent.com/": "X/"}) == (
        "https://raw.githubusercontent.com.evil/a"
    )
    assert apply_mirrors(url, {}) == url
    # Percent-encoding in the rest of the URL is kept as it is.
    encoded = UPSTREAM + "ACMISLab/Astro-QA/2b87acb9/data/EN/single-select%20multi%20choice%284%29_EN.xlsx"
    assert apply_mirrors(encoded, mirrors).endswith("/single-select%20multi%20choice%284%29_EN.xlsx")


@pytest.mark.parametrize("bad", ["https://raw.githubusercontent.com/", "=http://127.0.0.1:1/"])
def test_a_mirror_option_without_from_equals_to_exits_2(bad: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sources", "fetch", str(RECIPE), "--sources", str(tmp_path / "s"), "--mirror", bad])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "FROM=TO" in result.output, result.output
    assert not (tmp_path / "s").exists()  # nothing was fetched


@pytest.mark.parametrize("path", ["../outside.json", "sub/../../outside.json", "/tmp/outside.json", "linked/x.json"])
def test_a_fetch_path_leaving_the_sources_folder_is_refused_before_any_download(
    mirror: Mirror, tmp_path: Path, path: str
) -> None:
    """A shared recipe cannot make `sources fetch` overwrite a file beside or above the sources
    folder: every path is checked before the first request, a symlinked folder included."""
    sources = tmp_path / "sources"
    (tmp_path / "elsewhere").mkdir()
    sources.mkdir()
    (sources / "linked").symlink_to(tmp_path / "elsewhere")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f"""
[corpus]
name = "t"

[[sources]]
name = "g"
adapter = "alpaca"
path = "data.json"
category = "general"
lang = "en"

[[sources.fetch]]
path = "{path}"
sha256 = "{"0" * 64}"
url = "{UPSTREAM}someone/data/main/data.json"
""",
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["sources", "fetch", str(recipe), "--sources", str(sources), "--mirror", mirror.mirror_option]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: recipe ") and "outside the sources folder" in lines[0]
    assert mirror.requests == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["elsewhere", "linked", "recipe.toml", "sources"]
