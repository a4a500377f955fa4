"""Shared fixtures. Real upstream data lives in ../shared/sources (never copied into the project):
tests that need it skip when it is absent, except in CI where STELLAR_REQUIRE_SHARED=1 makes
its absence a failure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_SOURCES = ROOT.parent / "shared" / "sources"
SAMPLES = ROOT / "corpus" / "samples"


@pytest.fixture(scope="session")
def shared_sources() -> Path:
    if not SHARED_SOURCES.is_dir():
        if os.environ.get("STELLAR_REQUIRE_SHARED") == "1":
            pytest.fail(f"STELLAR_REQUIRE_SHARED=1 but {SHARED_SOURCES} is missing")
        pytest.skip(f"real sources not available at {SHARED_SOURCES}")
    return SHARED_SOURCES


def pytest_configure(config: pytest.Config) -> None:
    """No network in tests, and a private Hugging Face cache. Set before any test module imports
    `datasets`, which reads these variables once, at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="stellar-tests-hf-")
