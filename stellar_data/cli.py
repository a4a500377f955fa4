"""The `stellar-data` command line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .errors import StellarDataError
from .faults import Terminated

T = TypeVar("T")

app = typer.Typer(
    help="Build validated instruction-tuning corpora from a recipe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
# markup off: messages, paths and cells print as written ("[corpus]", "cells[0]", "a[/x]b.json");
# colour only through `_say` and Text
console = Console(stderr=True, markup=False)
if not console.is_terminal:  # logs and CI: wide enough for the tables, no wrapping
    console = Console(stderr=True, width=160, markup=False)
_STYLES = {"error": "bold red", "warning": "yellow", "note": ""}


def _say(kind: str, message: str) -> None:
    """One `error:` / `warning:` / `note:` line, the message exactly as written."""
    console.print(Text(f"{kind}:", style=_STYLES[kind]), Text(message), highlight=False, soft_wrap=True)


RecipeArg = Annotated[Path, typer.Argument(help="Recipe TOML, e.g. corpus/default.toml.")]
SourcesOpt = Annotated[
    Path | None,
    typer.Option(
        "--sources", help="Directory the source paths are relative to (default: the recipe's corpus.sources_dir)."
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the recipe's seed.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes (default: all cores).")]


@contextmanager
def _progress_bars() -> Iterator[object]:
    with Progress(
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bars:
        tasks: dict[str, object] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield report


def _run(call: Callable[[Callable[[str, int, int], None]], T]) -> T:
    """Run `call(progress)` under progress bars; a user-facing error is one line and exit code 2."""
    try:
        with _progress_bars() as report:
            return call(report)
    except StellarDataError as exc:
        raise _fail(exc) from None
    except (KeyboardInterrupt, Terminated) as exc:
        signal_name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        _say("error", f"interrupted ({signal_name})")
        raise typer.Exit(code=143 if isinstance(exc, Terminated) else 130) from None


def _fail(exc: StellarDataError) -> typer.Exit:
    _say("error", str(exc))
    return typer.Exit(code=2)


@app.command()
def build(
    recipe: RecipeArg,
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")] = Path("build/corpus"),
    sources: SourcesOpt = None,
    seed: SeedOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Build the corpus a recipe describes."""
    from .build import build as run_build

    corpus = _run(
        lambda report: run_build(recipe, out=out, sources=sources, seed=seed, workers=workers, progress=report)
    )
    manifest = corpus.manifest
    for note in manifest["volatile"].get("recovered", []):
        _say("note", note)
    for warning in manifest["warnings"]:
        _say("warning", warning)
    table = Table(title=f"{manifest['corpus']} -> {out}", title_justify="left")
    from .pipeline import SUMMARY_COLUMNS

    columns = [c for c in SUMMARY_COLUMNS if c not in ("valid", "kept")]  # each is a sum of its neighbours
    table.add_column("source")
    table.add_column("category")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for row in corpus.stats().iter_rows(named=True):
        table.add_row(row["source"], row["category"], *(str(row[c]) for c in columns))
    console.print(table)
    splits = ", ".join(f"{name} {info['records']}" for name, info in (manifest["splits"] | manifest["tables"]).items())
    seconds = manifest["volatile"]["timings_s"]["total"]
    console.print(
        f"records: {splits}; quarantine {manifest['quarantine']['records']} (see quarantine.parquet); {seconds:.1f} s",
        highlight=False,
    )


@app.command()
def plan(
    recipe: RecipeArg,
    sources: SourcesOpt = None,
    seed: SeedOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Print the mixture plan (counts, copies, achieved shares) without writing anything."""
    from .planning import mixture_plan

    result = _run(lambda report: mixture_plan(recipe, sources=sources, seed=seed, workers=workers, progress=report))
    if result.mix is None:
        console.print("the recipe has no [mix] section: train keeps every record", highlight=False)
    table = Table(title=f"mixture plan for {recipe} (train split)", title_justify="left")
    for column in (
        "category",
        "available",
        "target",
        "achieved",
        "target share",
        "achieved share",
        "copies per record",
        "status",
    ):
        table.add_column(column, justify="left" if column in ("category", "status") else "right")
    for row in result.rows():
        table.add_row(*row)
    console.print(table)
    for warning in result.mix.warnings if result.mix else ():
        _say("warning", warning)
    console.print(f"validation: {result.validation_records} records (never mixed)", highlight=False)


@app.command()
def check(recipe: RecipeArg, sources: SourcesOpt = None, workers: WorkersOpt = None) -> None:
    """Validate a recipe and read its sources without building anything."""
    from .check import check as run_check

    result = _run(lambda report: run_check(recipe, sources=sources, workers=workers, progress=report))
    for warning in result.warnings:
        _say("warning", warning)
    table = Table(title=f"check {recipe}", title_justify="left")
    columns = ("source", "files", "read", "valid", "quarantined", "excluded", "filtered", "ratio", "limit", "status")
    for column in columns:
        table.add_column(column, justify="left" if column in ("source", "status") else "right")
    for s in result.sources:
        table.add_row(
            s.name,
            str(s.files),
            str(s.read),
            str(s.valid),
            str(sum(s.quarantined.values())),
            str(sum(s.excluded.values())),
            str(sum(s.filtered.values())),
            f"{s.ratio:.1%}",
            f"{s.limit:.1%}",
            Text("ok") if s.ok else Text(s.status, style="red"),
        )
    console.print(table)
    for s in result.sources:
        reasons = (
            [f"{rule} {n}" for rule, n in s.quarantined.items()]
            + [f"{rule} {n} (excluded)" for rule, n in s.excluded.items()]
            + [f"{rule} {n} (filtered)" for rule, n in s.filtered.items()]
        )
        if reasons:
            console.print(f"  {s.name}: {', '.join(reasons)}", highlight=False, soft_wrap=True)
    for error in result.errors:
        _say("error", error)
    if not result.ok:
        raise typer.Exit(code=2)
    console.print("recipe and sources ok", highlight=False)


@app.command()
def report(
    corpus_dir: Annotated[Path, typer.Argument(help="A built corpus directory.")],
    tokenizer: Annotated[
        Path | None,
        typer.Option("--tokenizer", help="tokenizer.json, or a folder with one: adds token lengths to the report."),
    ] = None,
) -> None:
    """(Re)write report.html in a built corpus: mix, lengths, quarantine reasons, duplicates, breakdown."""
    from .writers.report import regenerate_report

    try:
        path = regenerate_report(corpus_dir, tokenizer=tokenizer)
    except StellarDataError as exc:
        raise _fail(exc) from None
    typer.echo(str(path))


@app.command()
def publish(
    corpus_dir: Annotated[Path, typer.Argument(help="A built corpus directory.")],
    repo_id: Annotated[str, typer.Argument(help="The dataset repository, e.g. user/stellarspeak.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to commit to (created if missing).")
    ] = None,
    create_pr: Annotated[bool, typer.Option("--create-pr", help="Open a pull request instead of committing.")] = False,
    backoff: Annotated[
        float,
        typer.Option("--backoff", min=0.0, help="Seconds before the first retry of a failed Hub request (doubles)."),
    ] = 2.0,
) -> None:
    """Publish the corpus to the Hugging Face Hub in one atomic commit (token: HF_TOKEN or the login)."""
    from .publish import RetryPolicy
    from .publish import publish as run_publish
    from .publish_errors import redact

    retry = RetryPolicy(backoff_s=backoff)
    result = _run(
        lambda report: run_publish(
            corpus_dir, repo_id, private=private, revision=revision, create_pr=create_pr, retry=retry, progress=report
        )
    )
    if not result.committed:
        console.print("nothing to publish: the Hub already has this corpus", highlight=False)
        return
    console.print(
        f"published {len(result.added)} files, deleted {len(result.deleted)} stale ones in one commit: "
        f"{redact(result.commit_url)}",
        highlight=False,
        soft_wrap=True,
    )


sources_app = typer.Typer(help="Upstream source files.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")


@sources_app.command("fetch")
def sources_fetch(
    recipe: Annotated[Path, typer.Argument(help="The recipe whose [[sources.fetch]] pins to download.")] = Path(
        "corpus/stellarspeak.toml"
    ),
    sources: SourcesOpt = None,
    mirror: Annotated[
        list[str] | None,
        typer.Option("--mirror", help="FROM=TO: fetch URLs starting with FROM from TO instead (a local mirror)."),
    ] = None,
) -> None:
    """Download the recipe's pinned upstream files into --sources, verifying their sha256."""
    from .fetch import fetch_sources
    from .recipe import load_recipe

    mirrors = {}
    for item in mirror or []:
        prefix, equals, replacement = item.partition("=")
        if not equals or not prefix:
            raise _fail(StellarDataError(f"--mirror {item!r}: expected FROM=TO"))
        mirrors[prefix] = replacement
    try:
        loaded = load_recipe(recipe, sources_dir=sources)
    except StellarDataError as exc:
        raise _fail(exc) from None
    fetched = _run(lambda report: fetch_sources(loaded, mirrors=mirrors, progress=report))
    counts = {}
    for item in fetched:
        counts[item.action] = counts.get(item.action, 0) + 1
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    console.print(f"{len(fetched)} files in {loaded.sources_dir}: {summary}", highlight=False)


if __name__ == "__main__":
    app()
