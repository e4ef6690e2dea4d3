"""``PredictorConfig``: how a transformer's default ``Model.predict`` reaches its predictor (KServe 0.21's
``kserve.predictor_config``)."""

from __future__ import annotations

from .constants import PredictorProtocol

__all__ = ["PredictorConfig"]


class PredictorConfig:
    """``PredictorConfig(predictor_host, predictor_protocol="v1", predictor_use_ssl=False,
    predictor_request_timeout_seconds=600, predictor_request_retries=0, predictor_health_check=False)``.

    Read-only properties of the same names, ``predictor_base_url`` (``http[s]://{predictor_host}``), and KServe's
    backward-compatible aliases ``protocol``, ``timeout``, ``retries`` and ``use_ssl``."""

    def __init__(
        self,
        predictor_host: str | None,
        predictor_protocol: str = PredictorProtocol.REST_V1.value,
        predictor_use_ssl: bool = False,
        predictor_request_timeout_seconds: float = 600,
        predictor_request_retries: int = 0,
        predictor_health_check: bool = False,
    ) -> None:
        self._predictor_host = predictor_host
        self._predictor_protocol = predictor_protocol
        self._predictor_use_ssl = predictor_use_ssl
        self._predictor_request_timeout_seconds = predictor_request_timeout_seconds
        self._predictor_request_retries = predictor_request_retries
        self._predictor_health_check = predictor_health_check

    @property
    def predictor_host(self) -> str | None:
        return self._predictor_host

    @property
    def predictor_protocol(self) -> str:
        return self._predictor_protocol

    @property
    def predictor_use_ssl(self) -> bool:
        return self._predictor_use_ssl

    @property
    def predictor_request_timeout_seconds(self) -> float:
        return self._predictor_request_timeout_seconds

    @property
    def predictor_request_retries(self) -> int:
        return self._predictor_request_retries

    @property
    def predictor_health_check(self) -> bool:
        return self._predictor_health_check

    @property
    def predictor_base_url(self) -> str:
        """``https://{host}`` with ``predictor_use_ssl``, else ``http://{host}``."""
        scheme = "https" if self._predictor_use_ssl else "http"
        return f"{scheme}://{self._predictor_host}"

    @property
    def protocol(self) -> str:
        return self._predictor_protocol

    @property
    def timeout(self) -> float:
        return self._predictor_request_timeout_seconds

    @property
    def retries(self) -> int:
        return self._predictor_request_retries

    @property
    def use_ssl(self) -> bool:
        return self._predictor_use_ssl

    def __repr__(self) -> str:
        return (
            f"PredictorConfig(predictor_host={self._predictor_host!r}, "
            f"predictor_protocol={self._predictor_protocol!r}, predictor_use_ssl={self._predictor_use_ssl!r}, "
            f"predictor_request_timeout_seconds={self._predictor_request_timeout_seconds!r}, "
            f"predictor_request_retries={self._predictor_request_retries!r}, "
            f"predictor_health_check={self._predictor_health_check!r})"
        )
