"""Run parameters: documented defaults, and bad values refused with the parameter's name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kit.config import ParameterError, RunConfig, bucket_seconds, defaults_yaml


def test_defaults_file_loads_back_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(defaults_yaml())
    assert RunConfig.load(path) == RunConfig()
    comments = [line for line in defaults_yaml().splitlines() if line.startswith("# ")]
    assert len(comments) > len(RunConfig().to_dict())  # a comment for every parameter


@pytest.mark.parametrize(("values", "message"), [
    ({"apdex_tms": 300}, "unknown parameter.*apdex_tms"),
    ({"apdex_t_ms": "fast"}, "'apdex_t_ms' must be float"),
    ({"top_n": 2.5}, "'top_n' must be int"),
    ({"services": "web"}, "'services' must be a list of str"),
    ({"start": "2026-11-20", "end": "2026-11-19"}, "'end' .* must be after 'start'"),
    ({"start": "yesterday"}, "'start' is not an ISO 8601"),
    ({"availability_target": 99.9}, "'availability_target' must be between 0 and 1"),
    ({"bucket": "5 minutes"}, "'bucket' must look like"),
    ({"cache_key": "url"}, "'cache_key' must be"),
])
def test_bad_parameters_name_the_parameter(tmp_path: Path, values: dict, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ParameterError, match=message):
        RunConfig.load(path)


def test_int_is_accepted_where_float_is_expected() -> None:
    assert RunConfig(apdex_t_ms=250).apdex_t_ms == 250


@pytest.mark.parametrize(("spec", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400)])
def test_bucket_seconds(spec: str, seconds: int) -> None:
    assert bucket_seconds(spec) == seconds
