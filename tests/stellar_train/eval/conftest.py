"""A small real corpus (the real Astro-QA workbooks, one template variant per item, deduplicated and
decontaminated as corpus/stellarspeak.toml is) and a LoRA adapter
trained on it for two steps by the real recipe, so its train_config.json names that corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import write_recipe

CORPUS = ROOT / "corpus"


@pytest.fixture(scope="session")
def small_corpus(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import stellar_data

    root = tmp_path_factory.mktemp("eval_corpus")
    recipe = write_recipe(
        root / "recipe.toml",
        f"""
        [corpus]
        name = "eval-test"
        seed = 20240229

        [normalize]
        protected_terms = "{CORPUS / "protected_terms.txt"}"

        [split]
        validation_fraction = 0.02

        # As the real recipe: without these, real duplicate questions under other IDs reach train.
        [near_dedup]
        threshold = 0.8

        [decontaminate]
        threshold = 0.5

        [[sources]]
        name = "astro_qa"
        adapter = "astro_qa"
        path = "Astro-QA/data"
        category = "astronomy"
        lang = "auto"
        opencc = "t2s"
        license = "cc-by-nc-sa-4.0"
        max_quarantine_ratio = 0.05
        [sources.options]
        date_cells = "{CORPUS / "astro_qa" / "date_cells.toml"}"
        [sources.holdout]
        fraction = 0.1
        stratify = ["type", "subfield"]
        [sources.templates]
        file = "{CORPUS / "templates" / "astro_qa.toml"}"
        variants = {{ single_choice_4 = 1, single_choice_5 = 1, multi_select = 1, judgment = 1, subjective = 1 }}
        """,
    )
    stellar_data.build(recipe, out=root / "corpus", sources=shared_sources, workers=1)
    return root / "corpus"


@pytest.fixture(scope="session")
def corpus_adapter(tiny_model: Path, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stellar_train import recipe
    from stellar_train.config import from_mapping

    out = tmp_path_factory.mktemp("eval_adapter") / "adapter"
    config = from_mapping({
        "base_model": str(tiny_model), "data": str(small_corpus), "output_dir": str(out), "precision": "fp32",
        "batching": "random", "batch_size": 4, "micro_batch_size": 4, "max_steps": 2, "learning_rate": 2e-2,
        "warmup_steps": 0, "save_steps": 0, "validation_split": "", "cutoff_len": 128, "lora_target_modules": "q_proj,v_proj",
    })  # fmt: skip
    recipe.train(config)
    return out
