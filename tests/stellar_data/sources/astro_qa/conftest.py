"""The real Astro-QA folder, read once for every Astro-QA test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stellar_data.sources.astro_qa.helpers import (
    DATA,
    DATE_CELLS,
    Entries,
    read_folder,
)


@pytest.fixture(scope="package")
def data_dir(shared_sources: Path) -> Path:
    return shared_sources / DATA


@pytest.fixture(scope="package")
def astro(data_dir: Path) -> Entries:
    """The real folder read as the StellarSpeak recipe reads it (reviewed date cells)."""
    return read_folder(data_dir, date_cells=str(DATE_CELLS))
