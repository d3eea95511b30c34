"""AWS access: small cached client factories, created on first use and never at import.

Domain functions take an `Aws` bundle, so tests and the local mode can hand in their own clients.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode retries throttling and 5xx with back-off; adaptive adds client-side rate limiting.
RETRY_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"})


def client(service: str) -> Any:
    """A boto3 client for `service`, shared by everything in this process."""
    return _cached_client(service)


@functools.cache
def _cached_client(service: str) -> Any:
    return boto3.client(service, config=RETRY_CONFIG)  # type: ignore[call-overload]


@functools.cache
def dynamodb_table(name: str) -> Any:
    """A boto3 DynamoDB Table resource."""
    return boto3.resource("dynamodb", config=RETRY_CONFIG).Table(name)


@dataclass
class Aws:
    """The clients a stage may use. Each is created when first asked for."""

    table_name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def _get(self, service: str) -> Any:
        return self.overrides.get(service) or client(service)

    @property
    def s3(self) -> Any:
        return self._get("s3")

    @property
    def comprehend(self) -> Any:
        return self._get("comprehend")

    @property
    def sagemaker(self) -> Any:
        return self._get("sagemaker")

    @property
    def a2i(self) -> Any:
        return self._get("sagemaker-a2i-runtime")

    @property
    def cloudformation(self) -> Any:
        return self._get("cloudformation")

    @property
    def events(self) -> Any:
        return self._get("events")

    @property
    def table(self) -> Any:
        return self.overrides.get("table") or dynamodb_table(self.table_name)


def reset_clients() -> None:
    """Forget cached clients (tests and the local mode switch emulated accounts)."""
    _cached_client.cache_clear()
    dynamodb_table.cache_clear()
