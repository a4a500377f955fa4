"""Evaluation of a model (and an adapter) on Astro-QA held-out items or other benchmarks.

    from stellar_train.eval import EvalSettings, evaluate
    report = evaluate(EvalSettings(model_path="base", adapter="out/adapter", eval_path="build/corpus",
                                   compare=True, out=Path("eval")), rich.console.Console())

Modules: `items` (EvalItem, loaders), `formats` (how an item is asked), `likelihood` (option
log-likelihoods), `generate` (greedy generation, parsing), `grading` (Astro-QA points), `tables`
(means, confidence intervals, console), `chart` (PNG), `guard` (contamination), `runner` (the
resumable run).
"""

from .items import EvalDataError, EvalItem, load_items
from .runner import EvalSettings, evaluate

__all__ = ["EvalDataError", "EvalItem", "EvalSettings", "evaluate", "load_items"]
