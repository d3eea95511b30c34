"""The one place that creates Powertools' Logger, Metrics and Tracer; handlers import them.

Powertools' Tracer imports the X-Ray SDK whenever it is created, even when tracing is off, and
that import costs more than boto3's (about 0.7 s on a cold start). So the real Tracer is made only
when tracing is on; otherwise `tracer` is a stand-in with the same decorators that does nothing,
and `aws_xray_sdk` is never imported. Tracing is off, as Powertools decides it, when
POWERTOOLS_TRACE_DISABLED is true, outside Lambda (no LAMBDA_TASK_ROOT), and under `sam local`
or Chalice's local server. On AWS the template's `Tracing` parameter (Active / PassThrough, default
PassThrough) sets both each function's X-Ray mode and POWERTOOLS_TRACE_DISABLED.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

F = TypeVar("F", bound=Callable[..., Any])


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Powertools would trace in this environment (the same rule as its Tracer's)."""
    env = os.environ if environ is None else environ
    if resolve_truthy_env_var_choice(env=env.get(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(env.get(constants.LAMBDA_TASK_ROOT_ENV))
    emulated = bool(env.get(constants.SAM_LOCAL_ENV) or env.get(constants.CHALICE_LOCAL_ENV))
    return in_lambda and not emulated


class DisabledTracer:
    """Tracing off: the Tracer methods nerloop uses, doing nothing, without the X-Ray SDK.

    The decorators return the function unchanged and work bare or with arguments, like Tracer's.
    """

    disabled = True

    def capture_lambda_handler(self, lambda_handler: F | None = None, capture_response: bool | None = None,
                               capture_error: bool | None = None) -> Any:
        return lambda_handler if lambda_handler is not None else _identity

    def capture_method(self, method: F | None = None, capture_response: bool | None = None,
                       capture_error: bool | None = None) -> Any:
        return method if method is not None else _identity

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def _identity(function: F) -> F:
    return function


def make_tracer(environ: Mapping[str, str] | None = None) -> Tracer | DisabledTracer:
    """Powertools' Tracer when tracing is on, else a DisabledTracer (no X-Ray SDK import)."""
    if not tracing_enabled(environ):
        return DisabledTracer()
    # Late import: Powertools' Tracer loads the X-Ray SDK, which a cold start without tracing never needs.
    from aws_lambda_powertools import Tracer

    return Tracer()


# The service name comes from POWERTOOLS_SERVICE_NAME (one per function, set in template.yaml).
logger = Logger()
metrics = Metrics(namespace="nerloop")
tracer = make_tracer()
