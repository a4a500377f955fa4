"""stellar_data: build validated, reproducible instruction-tuning corpora.

import stellar_data as sd
corpus = sd.build("corpus/default.toml", out="build/corpus")
corpus.frame.group_by("category").len().collect()
sd.load("build/corpus").stats()
"""

from .build import build
from .corpus import Corpus, load
from .errors import (
    CorpusDirError,
    DiskFullError,
    FilterLimitError,
    QuarantineLimitError,
    RecipeError,
    SourceFileError,
    StellarDataError,
)
from .plan import plan_build
from .publish import PublishError, PublishResult, RetryPolicy, publish
from .recipe import Recipe, SourceSpec, load_recipe
from .record import QUARANTINE_SCHEMA, RECORD_SCHEMA

__all__ = [
    "QUARANTINE_SCHEMA",
    "RECORD_SCHEMA",
    "Corpus",
    "CorpusDirError",
    "DiskFullError",
    "FilterLimitError",
    "PublishError",
    "PublishResult",
    "QuarantineLimitError",
    "Recipe",
    "RecipeError",
    "RetryPolicy",
    "SourceFileError",
    "SourceSpec",
    "StellarDataError",
    "build",
    "load",
    "load_recipe",
    "plan_build",
    "publish",
]
