"""``SPARK_METRICS_ADDRESS``: unset is off, ``host:port`` is kept, anything else is refused."""

from __future__ import annotations

import pytest

from spark.errors import ConfigurationError
from spark.observability.settings import MetricsSettings


def test_metrics_address_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset or empty: no endpoint; ``:9464`` binds every interface; a port is required."""
    monkeypatch.delenv("SPARK_METRICS_ADDRESS", raising=False)
    assert MetricsSettings.from_env().address is None
    monkeypatch.setenv("SPARK_METRICS_ADDRESS", ":9464")
    assert MetricsSettings.from_env().address == "0.0.0.0:9464"
    monkeypatch.setenv("SPARK_METRICS_ADDRESS", "127.0.0.1:9464")
    assert MetricsSettings.from_env().address == "127.0.0.1:9464"
    for bad in ("9464x", "localhost", "host:99999"):
        monkeypatch.setenv("SPARK_METRICS_ADDRESS", bad)
        with pytest.raises(ConfigurationError, match="SPARK_METRICS_ADDRESS"):
            MetricsSettings.from_env()
