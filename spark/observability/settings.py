"""Where the worker serves its metrics: ``SPARK_METRICS_ADDRESS``, read like ``spark.settings``."""

from __future__ import annotations

import os

from pydantic import BaseModel

from spark.errors import ConfigurationError

METRICS_ADDRESS_ENV = "SPARK_METRICS_ADDRESS"


class MetricsSettings(BaseModel):
    """``address``: ``host:port`` of the worker's ``/metrics`` endpoint; None serves none."""

    address: str | None = None

    @classmethod
    def from_env(cls) -> MetricsSettings:
        """Read ``SPARK_METRICS_ADDRESS`` (unset or empty: off). Raises ``ConfigurationError``
        for a value that is not ``host:port``."""
        raw = (os.environ.get(METRICS_ADDRESS_ENV) or "").strip()
        return cls(address=parse_bind_address(raw) if raw else None)


def parse_bind_address(raw: str) -> str:
    """``raw`` checked as ``host:port`` (a port from 0 to 65535; host may be empty for all
    interfaces, giving ``0.0.0.0``), else ``ConfigurationError`` naming the variable."""
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigurationError(
            f"{METRICS_ADDRESS_ENV}={raw!r} is not host:port (e.g. 0.0.0.0:9464)"
        )
    return f"{host or '0.0.0.0'}:{int(port)}"
