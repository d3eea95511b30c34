"""Tracing: the real Powertools Tracer only when tracing is on; otherwise no X-Ray SDK is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nerloop.observability import DisabledTracer, make_tracer, tracing_enabled
from nerloop_local.emulator.stack import Stack

REPO = Path(__file__).resolve().parents[2]
LAMBDA = {"LAMBDA_TASK_ROOT": "/var/task"}

# Imports the convert handler as Lambda would (layer and function folder on the path) and reports
# what the module-level tracer is and whether the X-Ray SDK got imported.
PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from nerloop.observability import tracer
print(json.dumps({"tracer": type(tracer).__name__, "xray": "aws_xray_sdk" in sys.modules,
                  "handler": callable(module.lambda_handler)}))
"""


def _import_handler(tracing: bool) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("POWERTOOLS_TRACE")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(REPO / "functions/convert"), str(REPO / "layers/common")]),
        "LAMBDA_TASK_ROOT": "/var/task", "AWS_LAMBDA_FUNCTION_NAME": "convert", "AWS_DEFAULT_REGION": "us-east-1",
        "STATE_TABLE": "state", "DATA_BUCKET": "data", "ENTITY_TYPES": "SERVICE,VERSION",
        "CONFIDENCE_THRESHOLD": "0.8", "RETRAIN_BATCH_SIZE": "25", "RETRAIN_MAX_WAIT_MINUTES": "1440",
        "REVIEW_BUDGET": "0", "RECOGNIZER_NAME": "nerloop",
        "COMPREHEND_ROLE_ARN": "arn:aws:iam::123456789012:role/x", "F1_TOLERANCE": "0.02", "VERSION_RETENTION": "3",
        "POWERTOOLS_SERVICE_NAME": "nerloop-convert",
    })
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "functions/convert/app.py")], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, False),  # outside Lambda
    (LAMBDA, True),
    ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}, False),
    ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false"}, True),
    ({**LAMBDA, "AWS_SAM_LOCAL": "true"}, False),
])
def test_tracing_follows_the_powertools_rule(environ: dict[str, str], expected: bool) -> None:
    assert tracing_enabled(environ) is expected


def test_a_disabled_tracer_is_made_without_the_xray_sdk() -> None:
    assert isinstance(make_tracer({"POWERTOOLS_TRACE_DISABLED": "true"}), DisabledTracer)


def test_the_disabled_tracer_decorators_leave_the_function_working_bare_or_with_arguments() -> None:
    tracer = DisabledTracer()

    @tracer.capture_lambda_handler
    def handler(event: dict[str, int], context: object) -> int:
        return event["n"] + 1

    @tracer.capture_method(capture_response=False)
    def method(value: int) -> int:
        return value * 2

    assert (handler({"n": 1}, None), method(3)) == (2, 6)


def test_with_tracing_off_importing_a_handler_never_imports_the_xray_sdk() -> None:
    seen = _import_handler(tracing=False)
    assert seen == {"tracer": "DisabledTracer", "xray": False, "handler": True}


@pytest.mark.slow
def test_with_tracing_on_a_handler_gets_the_real_powertools_tracer() -> None:
    seen = _import_handler(tracing=True)
    assert seen == {"tracer": "Tracer", "xray": True, "handler": True}


@pytest.mark.parametrize(("mode", "traced"), [("Active", True), ("PassThrough", False)])
def test_the_tracing_parameter_sets_every_function_s_mode_and_powertools_tracer(mode: str, traced: bool) -> None:
    stack = Stack.load({"Tracing": mode})

    assert stack.resolve(stack.template["Globals"]["Function"]["Tracing"]) == mode
    for function, resource in stack.functions().items():
        assert "Tracing" not in resource["Properties"], f"{function} overrides the Tracing parameter"
        assert tracing_enabled({**stack.function_environment(function), **LAMBDA}) is traced, function
