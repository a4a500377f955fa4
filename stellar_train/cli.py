"""The `stellar-train` command line: train, merge, chat, eval."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="LoRA fine-tuning on stellar-data corpora.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="Config (TOML or YAML).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate, tokenize and print the schedule; load no model weights.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Resume even if the config or corpus changed since the checkpoint.")
    ] = False,
) -> None:
    """Train a LoRA adapter. Any config field can be overridden: --learning-rate 2e-4 --batching packed."""
    from .config import ConfigError, load_config, parse_overrides
    from .data import DataError
    from .recipe import dry_run as plan_run
    from .recipe import train as run_train

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        settings = load_config(config, parse_overrides(list(ctx.args)), need_model=not dry_run)
        if dry_run:
            prepared = plan_run(settings, force=force)
            for note in prepared.notes:
                typer.echo(f"note: {note}")
            typer.echo(f"tokenization: {json.dumps(prepared.tokenization)}")
            typer.echo(prepared.schedule.line())
            return
        result = run_train(settings, force=force)
    except (ConfigError, DataError, OSError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"adapter: {result.output_dir}  train_loss {result.metrics.get('train_loss', float('nan')):.4f}"
        + (f"  eval_loss {result.metrics['eval_loss']:.4f}" if "eval_loss" in result.metrics else "")
    )


@app.command()
def merge(
    model_path: Annotated[str, typer.Option("--model-path", help="The base model the adapter was trained on.")],
    adapter: Annotated[str, typer.Option("--adapter", help="The adapter folder (output_dir of train).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the merged checkpoint.")],
    dtype: Annotated[str, typer.Option("--dtype", help="bf16, fp16 or fp32.")] = "fp16",
    max_shard_size: Annotated[str, typer.Option("--max-shard-size")] = "2GB",
    force: Annotated[bool, typer.Option("--force", help="Merge even if the adapter names another base.")] = False,
) -> None:
    """Merge an adapter into a freshly loaded base and save a full checkpoint (safetensors + tokenizer)."""
    from .merge import MergeError
    from .merge import merge as run_merge

    try:
        path = run_merge(model_path, adapter, out, dtype=dtype, max_shard_size=max_shard_size, force=force)
    except MergeError as exc:
        raise _fail(str(exc)) from None
    typer.echo(str(path))


@app.command()
def chat(
    model_path: Annotated[str, typer.Option("--model-path")],
    adapter: Annotated[str | None, typer.Option("--adapter")] = None,
    load_8bit: Annotated[
        bool, typer.Option("--load-8bit", help="Load the base in 8-bit (CUDA + bitsandbytes).")
    ] = False,
    style: Annotated[str, typer.Option("--style", help="rich or plain.")] = "rich",
    template: Annotated[str | None, typer.Option("--template", help="Default: the adapter's.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", help="0: greedy.")] = 0.7,
) -> None:
    """Chat in a terminal, or answer one message per line from a pipe. /reset clears the history.
    A message whose generation fails gets an `error:` line on stderr and the chat goes on (it stops
    after 3 failures in a row); the exit code is then 2."""
    from .chat import GenerationSettings, load_session, run_chat, stdin_lines
    from .prompt import TemplateError

    if style not in ("rich", "plain"):
        raise _fail(f"--style {style!r}: use rich or plain")
    try:
        session = load_session(
            model_path,
            adapter,
            template=template,
            load_8bit=load_8bit,
            settings=GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature),
        )
    except (TemplateError, OSError) as exc:
        raise _fail(str(exc)) from None
    failed = run_chat(session, stdin_lines(), sys.stdout, interactive=sys.stdin.isatty(), style=style)
    if failed:  # each failed message has had its `error:` line
        raise typer.Exit(code=2)


@app.command("eval")
def eval_command(
    model_path: Annotated[str, typer.Option("--model-path", help="The base model (or a merged checkpoint).")],
    eval_path: Annotated[
        str, typer.Option("--eval", help="A built corpus, its astro_qa_heldout folder or file; a CSV; a JSONL.")
    ],
    adapter: Annotated[str | None, typer.Option("--adapter", help="A LoRA adapter (output_dir of train).")] = None,
    eval_format: Annotated[
        str | None, typer.Option("--eval-format", help="astro-qa, mc-csv or jsonl (default: from the path).")
    ] = None,
    mapping: Annotated[
        str | None, typer.Option("--map", help="Columns for mc-csv / jsonl: question=Question,answer=Answer,A=...")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for eval.json, eval.png and the resumable scored.jsonl.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N items, in turn from each type.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    compare: Annotated[bool, typer.Option("--compare", help="Score the base, then base + adapter.")] = False,
    template: Annotated[str | None, typer.Option("--template", help="Default: the adapter's.")] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="Objective items: likelihood (option log-probs) or generate.")
    ] = "likelihood",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="For generated answers.")] = 256,
    types: Annotated[
        str | None, typer.Option("--types", help="Only these types, comma-separated (e.g. single_choice,judgment).")
    ] = None,
) -> None:
    """Evaluate on Astro-QA held-out items (or CSV / JSONL multiple choice): tables with 95% CIs per type,
    subfield and language, JSON and PNG in --out, a contamination check against the adapter's corpus."""
    from rich.console import Console

    from .config import ConfigError
    from .eval import EvalDataError, EvalSettings, evaluate
    from .eval.items import parse_mapping
    from .prompt import TemplateError

    try:
        settings = EvalSettings(
            model_path=model_path,
            eval_path=eval_path,
            adapter=adapter,
            eval_format=eval_format,
            mapping=parse_mapping(mapping),
            out=out,
            limit=limit,
            batch_size=batch_size,
            compare=compare,
            template=template,
            mode=mode,
            max_new_tokens=max_new_tokens,
            types=tuple(t.strip() for t in (types or "").split(",") if t.strip()),
        )
        evaluate(settings, Console(highlight=False, markup=False))  # paths and warnings print as written
    except (EvalDataError, TemplateError, ConfigError, OSError) as exc:
        raise _fail(str(exc)) from None


if __name__ == "__main__":
    app()
