"""The datatrove peer: the core chain as a datatrove pipeline (`pip install -e '.[bench]'`).

    .venv/bin/python bench/datatrove_build.py DATA_DIR --out OUT [--tasks 2]

Three LocalPipelineExecutor stages, the way datatrove's own dedup examples are laid out:

1. (tasks = workers = 2) JsonlReader over DATA_DIR/core/part-*.jsonl -> ValidTriple (a filter with the
   record schema's rule: instruction and output non-empty strings, input a string) -> OpenCCT2S (a
   formatter: strip and OpenCC t2s on each field) -> JsonlWriter (the normalized documents) ->
   ExactDedupSignature (hash of the triple).
2. (1 task) ExactFindDedups: merges the sorted signatures, lists the duplicates.
3. (tasks = workers = 2) JsonlReader over the normalized documents -> ExactDedupFilter -> ParquetWriter.

Stage 3 reads stage 1's output rather than redoing the filter and OpenCC, the usual way to run the
dedup stages after a processing pipeline. Documents whose `output` is not a non-empty string have
no text and are dropped by datatrove's reader itself (it skips documents without text).

Writes OUT/summary.json: lines read, kept after validation, kept after dedup (rows in the Parquet files).
"""

import argparse
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter


def read_triple(self, data: dict, path: str, id_in_file: int) -> dict:
    """Reader adapter: `output` is the document text, instruction and input go to the metadata."""
    output = data.get("output")
    return {
        "text": output if isinstance(output, str) else "",
        "id": f"{path}/{id_in_file}",
        "metadata": {"instruction": data.get("instruction"), "input": data.get("input", "")},
    }


def write_triple(self, document: Document) -> dict:
    """ParquetWriter adapter: one row per record, the triple as columns."""
    return {
        "id": document.id,
        "instruction": document.metadata["instruction"],
        "input": document.metadata["input"],
        "output": document.text,
    }


def triple_content(document: Document) -> bytes:
    """The exact-dedup key: the normalized triple (datatrove reads the return annotation to pick the hash)."""
    return f"{document.metadata['instruction']}\x1f{document.metadata['input']}\x1f{document.text}".encode()


class ValidTriple(BaseFilter):
    """The record schema's rule on the triple (minLength 1 after normalization, string types)."""

    name = "valid triple"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        instruction, input_ = doc.metadata.get("instruction"), doc.metadata.get("input")
        if not isinstance(instruction, str) or not isinstance(input_, str):
            return False, "wrong_type"
        if not instruction.strip():
            return False, "empty_instruction"
        if not doc.text.strip():
            return False, "empty_output"
        return True


class OpenCCT2S(PipelineStep):
    """Strip and convert each field to simplified Chinese with OpenCC (created per task: not picklable)."""

    type = "✂️ - FORMAT"
    name = "OpenCC t2s"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import opencc

        converter = opencc.OpenCC("t2s.json")
        for doc in data:
            self.stat_update("total")
            with self.track_time():
                doc.text = converter.convert(doc.text.strip())
                for key in ("instruction", "input"):
                    doc.metadata[key] = converter.convert(doc.metadata[key].strip())
            yield doc


def run_pipeline(data_dir: Path, out: Path, tasks: int) -> dict[str, int]:
    work = out / "work"
    config = ExactDedupConfig(content_getter=triple_content)
    stage1 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(data_dir / "core"), glob_pattern="part-*.jsonl", adapter=read_triple, text_key="output"),
            ValidTriple(),
            OpenCCT2S(),
            JsonlWriter(str(work / "normalized"), compression=None),
            ExactDedupSignature(output_folder=str(work / "sigs"), config=config),
        ],
        tasks=tasks,
        workers=tasks,
        logging_dir=str(work / "logs" / "1"),
    )
    stage2 = LocalPipelineExecutor(
        pipeline=[ExactFindDedups(data_folder=str(work / "sigs"), output_folder=str(work / "dups"), config=config)],
        tasks=1,
        logging_dir=str(work / "logs" / "2"),
        depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(work / "normalized")),
            ExactDedupFilter(data_folder=str(work / "dups"), config=config),
            ParquetWriter(str(out / "data"), adapter=write_triple),
        ],
        tasks=tasks,
        workers=tasks,
        logging_dir=str(work / "logs" / "3"),
        depends=stage2,
    )
    stage3.run()
    return summarize(data_dir, out, work)


def _lines(path: Path, non_empty: bool = False) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip() or not non_empty)


def summarize(data_dir: Path, out: Path, work: Path) -> dict[str, int]:
    read = sum(_lines(path, non_empty=True) for path in (data_dir / "core").glob("part-*.jsonl"))
    valid = sum(_lines(path) for path in (work / "normalized").glob("*.jsonl"))
    kept = sum(pq.ParquetFile(path).metadata.num_rows for path in (out / "data").glob("*.parquet"))
    return {"read": read, "valid": valid, "kept": kept}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="datatrove core-chain build (the peer for make bench).")
    parser.add_argument("data_dir", type=Path, help="a folder written by bench/generate.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", type=int, default=2, help="tasks and workers of the parallel stages")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)  # datatrove skips tasks its logs mark as completed
    counts = run_pipeline(args.data_dir.resolve(), args.out.resolve(), args.tasks)
    (args.out / "summary.json").write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
