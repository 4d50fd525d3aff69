"""Where hosted models are unpacked: the data dir locally, the function's own /tmp in Lambda."""

from __future__ import annotations

from pathlib import Path

import pytest

from openlookout.services.inference import model_cache_dir


def test_local_runtime_keeps_models_in_its_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENLOOKOUT_LOCAL", "1")
    monkeypatch.setenv("OPENLOOKOUT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPENLOOKOUT_MODEL_CACHE", "/tmp")  # the template's value must not win locally
    assert model_cache_dir() == tmp_path / "models"


def test_lambda_uses_the_configured_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLOOKOUT_LOCAL", raising=False)
    monkeypatch.delenv("OPENLOOKOUT_DATA_DIR", raising=False)
    monkeypatch.setenv("OPENLOOKOUT_MODEL_CACHE", "/tmp")
    assert model_cache_dir() == Path("/tmp/openlookout-models")
