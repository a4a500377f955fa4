"""`make bench-gpu`: LoRA training checks and throughput on one GPU, within a time budget.

    python bench/gpu_check.py --out build/gpu_check.json --budget-s 300
    python bench/gpu_check.py --tiny --out tmp/x.json           # tiny shapes; CPU in fp32 without CUDA

Random-init LLaMA-2 7B and 13B shapes (weights created on the GPU in bf16), LoRA r8 on q/k/v/o.
1. packed vs padded loss (sdpa, eager, and the `stellar_varlen` kernel of bench/gpu_varlen.py) at
   micro-batch 1 and 4, with a leak control (the packed rows under a plain causal mask, so examples
   see each other) showing how far a wrong mask moves the loss;
2. bs4 x GA1 vs bs1 x GA4: window loss and LoRA gradients, with the Trainer's normalization;
3. throughput: tokens/s (non-pad and label tokens), MFU (4N and 6N per non-pad token, N = base
   parameters, attention FLOPs not counted) against each --peak-tflops, peak memory.
Before each measurement the remaining budget is checked (one that does not fit is recorded as
skipped); the JSON (and a markdown table beside it) is rewritten after every measurement, so a
killed run still reports. On CPU peak memory is null and MFU is computed against the given peaks
anyway (a meaningless but exercised number). Imports only torch, transformers, peft and
stellar_train's batching/tokenize.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # the budget counts from here, imports included

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gpu_check_lib as lib  # noqa: E402
import gpu_varlen  # noqa: E402
import torch  # noqa: E402
from gpu_check_report import machine, markdown  # noqa: E402

from stellar_train.batching import pack  # noqa: E402

PEAK_TFLOPS = (989.0, 790.0)  # dense bf16: H100/H200 SXM nominal; measured on a large matmul on the H200
TOLERANCE = {  # relative, |a - b| / |b|: bf16 on the GPU, fp32 for the tiny CPU run
    torch.bfloat16: {"loss": 2e-2, "grad": 5e-2},
    torch.float32: {"loss": 1e-4, "grad": 1e-3},
}
RESERVE_S = 3.0  # kept free for writing the report and exiting
FULL = dict(check=(24, 64, 512, 1024), cutoff=512, width=2048, cutoff_13b=256, warmup=2, timed=5)
TINY = dict(check=(12, 8, 48, 96), cutoff=32, width=128, cutoff_13b=16, warmup=1, timed=2)
"""check: (examples, shortest, longest, packed row width) of the correctness checks."""


class Skip(Exception):
    """A measurement that cannot run here (the reason is recorded)."""


@dataclass(frozen=True)
class Case:
    """One throughput run: `length` is the cutoff (padded) or the packed row width."""

    size: str
    layout: str
    micro: int
    length: int
    checkpointing: bool = False
    attention: str = "sdpa"


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.tolerance = TOLERANCE[self.dtype]
        self.tiny = args.tiny
        self.sizes = TINY if self.tiny else FULL
        self.deadline = STARTED + args.budget_s
        self.models: dict[str, lib.Model] = {}
        self.varlen_ok, self.varlen_backend = gpu_varlen.register(self.device)
        self.out = Path(args.out)
        dtype = str(self.dtype).removeprefix("torch.")
        lora = {"r": 8, "alpha": 16, "dropout": 0.0, "targets": lib.LORA_TARGETS, "init_lora_weights": False}
        self.report = {
            "schema": "stellar-gpu-check/1",
            "machine": machine(self.device),
            "settings": {
                "tiny": self.tiny,
                "budget_s": args.budget_s,
                "device": str(self.device),
                "dtype": dtype,
                "peak_tflops": list(args.peak_tflops),
                "lora": lora,
                "varlen_backend": self.varlen_backend,
                **self.sizes,
            },
            "tolerance": {"rule": "|a - b| / |b| <= tolerance", "dtype": dtype, **self.tolerance},
            "mfu_note": "non-pad tokens/s x {4,6} x N / peak, N = base parameters, attention FLOPs not counted;"
            " 4N = LoRA (forward + activation gradients), 6N = 4N + the recompute under checkpointing"
            " (or the full fine-tuning convention). On CPU the given peaks are used anyway.",
            "entries": [],
            "finished": False,
        }

    # --- bookkeeping --------------------------------------------------------------------------------

    def name(self, size: str) -> str:
        return f"tiny-{size}" if self.tiny else f"llama2-{size}"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def model(self, size: str) -> lib.Model:
        """The model of this size, built on first use (after releasing any other)."""
        name = self.name(size)
        if name not in self.models:
            for other in list(self.models):
                lib.release(self.models.pop(other))
            self.models[name] = lib.build(name, self.device, self.dtype)
        return self.models[name]

    def estimate(self, size: str, tokens: int, passes: float, steps: int) -> float:
        """Rough seconds for `steps` of `tokens` tokens at `passes` x 2N FLOPs per token (assuming 150
        TFLOP/s sustained on a GPU), plus building the model when it is not there yet."""
        built = self.name(size) in self.models
        if self.tiny:
            return (0 if built else 1.0) + steps * 0.05
        params, build_s = {"7b": (6.74e9, 15.0), "13b": (13.0e9, 25.0)}[size]
        return (0 if built else build_s) + steps * max(0.05, tokens * passes * 2 * params / 150e12)

    def write(self) -> None:
        self.report["elapsed_s"] = round(time.monotonic() - STARTED, 2)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.report, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.out)
        self.out.with_suffix(".md").write_text(markdown(self.report), encoding="utf-8")

    def measure(self, kind: str, name: str, settings: dict, estimate_s: float, fn) -> None:
        """Run one measurement if the budget allows, recording ok / skipped / oom / error."""
        entry = {"kind": kind, "name": name, "settings": settings, "status": "running"}
        self.report["entries"].append(entry)
        left = self.left()
        if left < estimate_s + RESERVE_S:
            entry.update(status="skipped", reason=f"budget: needs ~{estimate_s:.1f} s, {max(0.0, left):.1f} s left")
            self.write()
            return
        self.write()  # a run killed now still shows what was running
        began = time.monotonic()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            entry.update(status="ok", result=fn())
        except Skip as why:
            entry.update(status="skipped", reason=str(why))
        except torch.cuda.OutOfMemoryError as exc:
            entry.update(status="oom", reason=str(exc).splitlines()[0][:300])
        except Exception as exc:
            entry.update(status="error", reason=f"{type(exc).__name__}: {exc}"[:500])
            traceback.print_exc()
        for model in self.models.values():  # a failed step's gradients must not linger
            if model.peft is not None:
                model.peft.zero_grad(set_to_none=True)
        if self.cuda:
            lib.release(None)  # after the except blocks, so a failed step's tensors are unreachable
        entry["seconds"] = round(time.monotonic() - began, 2)
        self.write()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    # --- 1. packed vs padded ----------------------------------------------------------------------

    def packed_vs_padded(self, attention: str, micro: int) -> dict:
        if attention == gpu_varlen.NAME and not self.varlen_ok:
            raise Skip(self.varlen_backend)
        model = self.model("7b")
        count, low, high, width = self.sizes["check"]
        examples = lib.uniform_examples(count, low, high, lib.VOCAB[model.name], seed=1)
        rows = pack(examples, width)
        total = lib.label_tokens(examples)
        padded, packed = lib.padded_batches(examples, micro), lib.packed_batches(rows, micro, attention)
        keys = sorted(packed[0].tensors)
        lib.set_attention(model, attention)
        model.base.eval()
        leak = None
        try:
            with torch.no_grad():
                padded_loss = lib.window_loss(model.base, padded, self.device, total)
                packed_loss = lib.window_loss(model.base, packed, self.device, total)
                if attention in ("sdpa", "eager"):  # the leak control: a plain causal mask over whole rows
                    for batch in packed:
                        batch.tensors = {**batch.tensors, "attention_mask": torch.ones_like(batch.tensors["input_ids"])}
                    leak = abs(lib.window_loss(model.base, packed, self.device, total) - padded_loss) / padded_loss
        finally:
            lib.set_attention(model, "sdpa")
        diff = abs(packed_loss - padded_loss) / abs(padded_loss)
        return {
            "padded_loss": padded_loss,
            "packed_loss": packed_loss,
            "rel_diff": diff,
            "tolerance": self.tolerance["loss"],
            "within_tolerance": diff <= self.tolerance["loss"],
            "leak_control_rel_diff": leak,
            "leak_exceeds_tolerance": None if leak is None else leak > self.tolerance["loss"],
            "examples": count,
            "packed_rows": len(rows),
            "label_tokens": total,
            "packed_batch_keys": keys,
            "attention_backend": self.varlen_backend if attention == gpu_varlen.NAME else attention,
        }

    # --- 2. gradient accumulation ---------------------------------------------------------------

    def accumulation(self) -> dict:
        model = self.model("7b")
        _, low, high, _ = self.sizes["check"]
        examples = lib.uniform_examples(4, low, high, lib.VOCAB[model.name], seed=2)
        total = lib.label_tokens(examples)
        peft = model.lora()
        peft.train()
        runs = {}
        for micro in (4, 1):
            peft.zero_grad(set_to_none=True)
            loss = lib.window_loss(peft, lib.padded_batches(examples, micro), self.device, total, backward=True)
            runs[micro] = (loss, lib.grads(model.lora_params()))
        (loss4, grads4), (loss1, grads1) = runs[4], runs[1]
        result = {"loss_bs4_ga1": loss4, "loss_bs1_ga4": loss1, "loss_rel_diff": abs(loss1 - loss4) / abs(loss4)}
        result |= lib.grad_difference(grads4, grads1)
        loss_ok = result["loss_rel_diff"] <= self.tolerance["loss"]
        grad_ok = result["grad_rel_diff_global"] <= self.tolerance["grad"]
        return result | {"tolerance": self.tolerance, "matches": loss_ok and grad_ok, "label_tokens": total}

    # --- 3. throughput ----------------------------------------------------------------------------

    def batches(self, case: Case, steps: int) -> list[lib.Batch]:
        vocab = lib.VOCAB[self.name(case.size)]
        if case.layout == "padded":
            return lib.grouped_batches(lib.sft_examples(50 * case.micro, case.length, vocab, seed=3), case.micro, steps)
        cutoff = self.sizes["cutoff"]
        pool = lib.sft_examples(max(200, 3 * steps * case.micro * case.length // cutoff), cutoff, vocab, seed=3)
        return lib.packed_steps(pool, case.length, case.micro, steps, case.attention)

    def throughput(self, case: Case) -> dict:
        if case.attention == gpu_varlen.NAME and not self.varlen_ok:
            raise Skip(self.varlen_backend)
        warmup, timed = self.sizes["warmup"], self.sizes["timed"]
        batches = self.batches(case, warmup + timed)
        model = self.model(case.size)
        peft = model.lora()
        peft.train()
        lib.set_attention(model, case.attention)
        method = lib.set_checkpointing(model, case.checkpointing) if case.checkpointing else None
        optimizer = torch.optim.AdamW([p for _, p in model.lora_params()], lr=1e-4)
        try:
            for batch in batches[:warmup]:
                lib.train_step(peft, optimizer, batch, self.device)
            self.sync()
            began = time.monotonic()
            lib.train_step(peft, optimizer, batches[warmup], self.device)
            self.sync()
            fits = int((self.left() - RESERVE_S) / (time.monotonic() - began))  # more steps the budget allows
            done = batches[warmup : warmup + 1 + max(0, min(timed - 1, fits))]
            for batch in done[1:]:
                lib.train_step(peft, optimizer, batch, self.device)
            self.sync()
            seconds = time.monotonic() - began
        finally:
            lib.set_checkpointing(model, False)
            lib.set_attention(model, "sdpa")
        real, labels, slots = (sum(getattr(b, k) for b in done) for k in ("real", "labels", "slots"))
        per_s = real / seconds
        mfu = {
            f"{k}N": {f"{p:g}": per_s * k * model.params / (p * 1e12) for p in self.args.peak_tflops} for k in (4, 6)
        }
        return {
            "tokens_per_s": per_s,
            "label_tokens_per_s": labels / seconds,
            "pad_share": 1 - real / slots,
            "step_s": seconds / len(done),
            "timed_steps": len(done),
            "warmup_steps": warmup,
            "base_params": model.params,
            "checkpointing_method": method,
            "mfu": mfu,
            "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None,
            "weights_gb": model.weights_gb,
        }

    def cases(self) -> list[Case]:
        cutoff, width = self.sizes["cutoff"], self.sizes["width"]
        layouts = [("padded", 4, cutoff), *(("packed", m, width) for m in (1, 2, 4))]
        plain = [Case("7b", *layout) for layout in layouts]
        varlen = [Case("7b", "packed", 4, width, attention=gpu_varlen.NAME)]
        checkpointed = [Case("7b", *layout, checkpointing=True) for layout in layouts]
        big = [Case("13b", "padded", 2, self.sizes["cutoff_13b"], checkpointing=gc) for gc in (False, True)]
        return plain + varlen + checkpointed + big

    def plan(self) -> None:
        count, low, high, width = self.sizes["check"]
        # transformers' own flash-attention path too, where flash-attn is installed (it has no wheel to bring).
        flash = ("flash_attention_2",) if self.cuda and importlib.util.find_spec("flash_attn") else ()
        for attention in ("sdpa", "eager", gpu_varlen.NAME, *flash):
            for micro in (1, 4):
                settings = {"attention": attention, "micro_batch": micro, "model": self.name("7b"), "pack_width": width}
                estimate = self.estimate("7b", count * (low + high) // 2, 1.5 if attention == "eager" else 1, 3)
                run = partial(self.packed_vs_padded, attention, micro)
                self.measure("packed_vs_padded", f"{attention} micro {micro}", settings, estimate, run)
        settings = {"model": self.name("7b"), "attention": "sdpa", "examples": 4}
        estimate = self.estimate("7b", 4 * high, 3, 2)
        self.measure("grad_accumulation", "bs4xGA1 vs bs1xGA4", settings, estimate, self.accumulation)
        steps = self.sizes["warmup"] + self.sizes["timed"]
        for case in self.cases():
            length = "cutoff" if case.layout == "padded" else "pack_width"
            settings = {"model": self.name(case.size), "layout": case.layout, "micro_batch": case.micro}
            settings |= {length: case.length, "checkpointing": case.checkpointing, "attention": case.attention}
            name = f"{self.name(case.size)} {case.layout} micro {case.micro}"
            name += " gc" * case.checkpointing + " varlen" * (case.attention == gpu_varlen.NAME)
            estimate = self.estimate(case.size, case.micro * case.length, 3 if case.checkpointing else 2, steps)
            self.measure("throughput", name, settings, estimate, partial(self.throughput, case))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/gpu_check.json")
    parser.add_argument("--budget-s", type=float, default=300.0, help="wall-clock budget, start-up included")
    parser.add_argument("--peak-tflops", type=float, nargs="+", default=list(PEAK_TFLOPS))
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU in fp32 without CUDA)")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("error: the 7B/13B shapes need a CUDA GPU (use --tiny on CPU)", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' checkpointing renames
    if args.tiny and not torch.cuda.is_available():
        torch.set_num_threads(1)  # tiny matmuls: threads only add contention (20x slower on a busy 2-core box)
    run = Run(args)
    run.write()
    run.plan()
    run.report["finished"] = True
    run.write()
    print(markdown(run.report))
    print(f"wrote {run.out} and {run.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
