"""Shared fixtures: paths to the project's shared real datasets (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` next to the project; the tests that use it fail when it is missing."""
    assert SHARED_DATASETS.is_dir(), f"shared datasets not found at {SHARED_DATASETS}"
    return SHARED_DATASETS
