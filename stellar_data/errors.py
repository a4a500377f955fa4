"""Errors a user must act on. The CLI prints each as one line; none of them is a bug report."""


class StellarDataError(Exception):
    """Base class: a problem with a recipe, a source file or a build limit."""


class RecipeError(StellarDataError):
    """The recipe is invalid; the message names the file and the offending key."""


class SourceFileError(StellarDataError):
    """A source file is missing, unreadable, wrongly encoded or not in its declared format."""


class QuarantineLimitError(StellarDataError):
    """A source quarantined more of its items than the recipe allows."""


class FilterLimitError(StellarDataError):
    """The quality filters removed more of a source's items than the recipe allows."""


class CorpusDirError(StellarDataError):
    """A directory is not a built corpus (no manifest.json / data shards)."""


class DiskFullError(StellarDataError):
    """The device ran out of space while a build wrote its staging folder (the previous corpus is intact)."""
