"""`make bench-train` (CPU part): the trainer's data pipeline on a built corpus.

For random order, length-grouped (the sampler the Trainer uses) and packed batches: the share of
non-pad tokens per batch, samples/s of the pipeline (tokenize + mask + batch + collate), and the
optimizer steps the shipped config (corpus/train_stellarspeak.toml: 256 examples a step, micro 4,
3 epochs) would take with that batching (schedule.plan, the count the Trainer makes). The
tokenizer is a SentencePiece BPE model trained here on the corpus text (nothing is downloaded), a
stand-in for LLaMA's. Writes a JSON result and prints a table.

    python bench/train_pipeline.py CORPUS_DIR [--cutoff 512] [--micro-batch 8] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
import tomllib
from pathlib import Path

import polars as pl
import sentencepiece as spm
import torch
from transformers import LlamaTokenizer
from transformers.trainer_pt_utils import LengthGroupedSampler

import stellar_data
from stellar_train.batching import collate_packed, collate_padded, non_pad_share, pack
from stellar_train.config import from_mapping
from stellar_train.data import encode_records
from stellar_train.model import batch_text_tokenizer, load_tokenizer, special_ids, text_tokenizer
from stellar_train.prompt import PromptTemplate
from stellar_train.schedule import plan


def train_tokenizer(texts: list[str], folder: Path, vocab_size: int) -> Path:
    """A LLaMA-style SentencePiece BPE tokenizer (unk/bos/eos 0/1/2, byte fallback), saved as tokenizer.json."""
    sp_dir = folder / "sp"
    sp_dir.mkdir(parents=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(sp_dir / "tokenizer"), vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        character_coverage=0.9995, input_sentence_size=200_000, shuffle_input_sentence=True, minloglevel=2,
    )  # fmt: skip
    out = folder / "tokenizer"
    LlamaTokenizer.from_pretrained(sp_dir).save_pretrained(out)
    return out


SHIPPED = Path(__file__).resolve().parent.parent / "corpus" / "train_stellarspeak.toml"


def shipped_schedule(batching: str, pack_len: int, examples: int, rows: int, tokens: int) -> dict[str, float]:
    values = tomllib.loads(SHIPPED.read_text(encoding="utf-8")) | {"batching": batching, "pack_len": pack_len}
    schedule = plan(from_mapping(values), examples, rows, tokens)
    return {"optimizer_steps": schedule.optimizer_steps, "examples_per_step": round(schedule.examples_per_step, 1)}


def batches_of(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--cutoff", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=8, help="Examples (packed: rows) per batch.")
    parser.add_argument("--pack-len", type=int, default=2048, help="Tokens per packed row (also measured: --cutoff).")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("build/bench/train_pipeline.json"))
    args = parser.parse_args()

    corpus = stellar_data.load(args.corpus)
    records = corpus.frame.select("instruction", "input", "output").collect().to_dicts()
    texts = [" ".join(r.values()) for r in random.Random(args.seed).sample(records, min(len(records), 50_000))]
    template = PromptTemplate.load("stellarspeak")
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        tokenizer = load_tokenizer(str(train_tokenizer(texts, Path(work), args.vocab_size)))
        tokenizer_seconds = time.perf_counter() - started
        ids = special_ids(tokenizer)

        started = time.perf_counter()
        examples, stats = encode_records(
            records,
            text_tokenizer(tokenizer),
            ids,
            template,
            args.cutoff,
            "truncate_prompt",
            False,
            batch_text_tokenizer(tokenizer),
        )
        encode_seconds = time.perf_counter() - started
    lengths = [len(e) for e in examples]
    results = {}
    modes = {
        "random": lambda: batches_of(
            random.Random(args.seed).sample(range(len(examples)), len(examples)), args.micro_batch
        ),
        "group_by_length": lambda: batches_of(
            list(
                LengthGroupedSampler(
                    args.micro_batch, lengths=lengths, generator=torch.Generator().manual_seed(args.seed)
                )
            ),
            args.micro_batch,
        ),
    }
    for mode, make in modes.items():
        started = time.perf_counter()
        batches = make()
        for batch in batches:
            collate_padded([examples[i] for i in batch], ids.pad)
        seconds = time.perf_counter() - started
        results[mode] = {
            "batches": len(batches),
            "non_pad_share": non_pad_share([[lengths[i] for i in batch] for batch in batches]),
            "samples_per_s": len(examples) / (encode_seconds + seconds),
            "collate_s": seconds,
            **shipped_schedule(mode, args.pack_len, len(examples), len(examples), sum(lengths)),
        }
    for pack_len in sorted({args.cutoff, args.pack_len}):
        started = time.perf_counter()
        rows = pack(examples, pack_len)
        order = random.Random(args.seed).sample(range(len(rows)), len(rows))
        packed_batches = batches_of(order, args.micro_batch)
        for batch in packed_batches:
            collate_packed([rows[i] for i in batch], ids.pad)
        seconds = time.perf_counter() - started
        results[f"packed_{pack_len}"] = {
            "batches": len(packed_batches),
            "rows": len(rows),
            # Every position of a packed batch is a real token except each row's tail padding (sdpa's
            # form; a varlen kernel's flattened batch has no padding at all).
            "non_pad_share": non_pad_share([[len(rows[i]) for i in batch] for batch in packed_batches]),
            "samples_per_s": len(examples) / (encode_seconds + seconds),
            "collate_s": seconds,
            **shipped_schedule("packed", pack_len, len(examples), len(rows), sum(lengths)),
        }
    report = {
        "corpus": str(args.corpus),
        "records": len(records),
        "examples": len(examples),
        "tokenization": stats.as_dict(),
        "cutoff": args.cutoff,
        "micro_batch": args.micro_batch,
        "tokenizer_vocab": len(tokenizer),
        "tokenizer_train_s": round(tokenizer_seconds, 2),
        "encode_s": round(encode_seconds, 2),
        "mean_tokens": sum(lengths) / len(lengths),
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "modes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = pl.DataFrame(
        [
            {"batching": m, **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}
            for m, r in results.items()
        ]
    )
    summary = f"mean {report['mean_tokens']:.0f} tokens, cutoff {args.cutoff}, micro-batch {args.micro_batch}"
    print(f"{len(examples)} examples ({stats.as_dict()}), {summary}; encode {encode_seconds:.1f} s")
    print(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
