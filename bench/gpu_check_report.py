"""The machine record and the markdown tables of bench/gpu_check.py's JSON report."""

from __future__ import annotations

import platform

import torch


def machine(device: torch.device) -> dict:
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    for package in ("peft", "accelerate"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    else:
        info |= {"gpu": None, "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    return info


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _check_row(entry: dict) -> str:
    r, note = entry.get("result", {}), entry.get("reason", "")
    if entry["kind"] == "packed_vs_padded":
        name, a, b = f"packed vs padded, {entry['name']}", r.get("padded_loss"), r.get("packed_loss")
        diff, tolerance, ok = r.get("rel_diff"), r.get("tolerance"), r.get("within_tolerance")
        if not note and r.get("leak_control_rel_diff") is not None:
            note = f"leak control {_fmt(r['leak_control_rel_diff'])}"
        note = note or r.get("attention_backend", "")
    else:
        name, a, b = entry["name"], r.get("loss_bs4_ga1"), r.get("loss_bs1_ga4")
        diff, tolerance, ok = r.get("loss_rel_diff"), r.get("tolerance", {}).get("loss"), r.get("matches")
        if not note and r:
            note = f"grad rel diff {_fmt(r['grad_rel_diff_global'])} (max tensor {_fmt(r['grad_rel_diff_max_tensor'])})"
    return _row(name, entry["status"], _fmt(a, 6), _fmt(b, 6), _fmt(diff), _fmt(tolerance), _fmt(ok), note)


def markdown(report: dict) -> str:
    """A checks table and a throughput table (for docs/BENCHMARKS.md)."""
    m, s = report["machine"], report["settings"]
    peaks = [f"{p:g}" for p in s["peak_tflops"]]
    mfu_heads = [f"MFU {k} @{p}" for k in ("4N", "6N") for p in peaks]
    lines = [
        f"GPU check: {m.get('gpu') or 'CPU'}, torch {m['torch']}, transformers {m['transformers']}, peft {m['peft']},"
        f" {s['dtype']}, budget {s['budget_s']} s, elapsed {report.get('elapsed_s')} s",
        "",
        _row("check", "status", "a (padded / bs4)", "b (packed / GA4)", "rel diff", "tolerance", "ok", "note"),
        _row(*["---"] * 8),
    ]
    lines += [_check_row(e) for e in report["entries"] if e["kind"] != "throughput"]
    lines += ["", _row("run", "status", "tokens/s", "label tokens/s", "pad share", *mfu_heads, "peak GB", "note")]
    lines.append(_row(*["---"] * (7 + len(mfu_heads))))
    for e in report["entries"]:
        if e["kind"] == "throughput":
            r, mfu = e.get("result", {}), e.get("result", {}).get("mfu", {})
            cells = [_fmt(mfu.get(k, {}).get(p)) for k in ("4N", "6N") for p in peaks]
            tokens, labels = (f"{r[k]:.0f}" if k in r else "-" for k in ("tokens_per_s", "label_tokens_per_s"))
            note = e.get("reason", "")
            lines.append(
                _row(
                    e["name"],
                    e["status"],
                    tokens,
                    labels,
                    _fmt(r.get("pad_share"), 2),
                    *cells,
                    _fmt(r.get("peak_mem_gb")),
                    note,
                )
            )
    return "\n".join([*lines, ""])
