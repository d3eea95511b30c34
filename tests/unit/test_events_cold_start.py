"""Cold start: a handler imports only the event models of its own events (nerloop.event_models, one
module per source), pydantic skips its plugin search with the template's environment, garbage
collection, paused while the modules load (nerloop.coldstart), runs again once they are loaded, and
no model makes pydantic read a builtin's signature (which compiles tokenize's regular expression)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from nerloop.event_catalog import model_for
from nerloop.event_models.schedule import ScheduledEvent
from nerloop_local.emulator.stack import Stack, load_event
from nerloop_local.emulator.template import REPO

STACK = Stack.load()


def _stage(function: str) -> str:
    return str(STACK.functions()[function]["Properties"]["CodeUri"]).strip("/").rsplit("/", 1)[-1]


# Stage functions and their sample event (events/<stage>.json); the custom resource has none.
STAGES = {function: _stage(function) for function in STACK.functions()
          if (REPO / "events" / f"{_stage(function)}.json").is_file()}

# Imports a handler as Lambda would, then reports which nerloop event modules got imported, whether
# pydantic searched for plugins, and what the garbage collector is doing.
PROBE = """
import gc, importlib.util, json, sys
from pydantic.plugin import _loader
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = sorted(name for name in sys.modules
                  if name == "nerloop.event_catalog" or name.startswith("nerloop.event_models."))
import tokenize
print(json.dumps({"imported": imported, "plugins_searched": _loader._plugins is not None,
                  "gc": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "tokenize_compiled": tokenize._compile.cache_info().currsize > 0}))
"""


@functools.cache
def _import_handler(function: str) -> dict[str, Any]:
    code = REPO / STACK.functions()[function]["Properties"]["CodeUri"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("POWERTOOLS_", "PYDANTIC_"))}
    env.update(STACK.function_environment(function))
    env.update({"PYTHONPATH": os.pathsep.join([str(code), str(REPO / "layers/common")]),
                "LAMBDA_TASK_ROOT": "/var/task", "AWS_DEFAULT_REGION": "us-east-1",
                "FLOW_DEFINITION_ARN": "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/x"})
    done = subprocess.run([sys.executable, "-c", PROBE, str(code / "app.py")], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_every_stage_function_has_a_sample_event() -> None:
    assert {"ConvertFunction", "DetectFunction", "MergeFunction", "WatchFunction"} <= set(STAGES)


@pytest.mark.parametrize("function", sorted(STAGES))
def test_a_handler_imports_only_the_event_models_of_its_own_events(function: str) -> None:
    # Every sample event of the stage (events/<stage>.json and events/<stage>-*.json): a function may
    # take several events (convert: a completed job, and its own continuation).
    samples = [STAGES[function], *(path.stem for path in sorted((REPO / "events").glob(f"{STAGES[function]}-*.json")))]
    models = [model_for(load_event(name)) for name in samples]
    assert None not in models

    seen = _import_handler(function)

    assert seen["imported"] == sorted({"nerloop.event_models.envelope", *(m.__module__ for m in models if m)})
    assert not seen["plugins_searched"]
    assert seen["gc"] and seen["frozen"] > 10_000  # collecting again; the modules' objects left out


@pytest.mark.parametrize("function", sorted(STACK.functions()))
def test_importing_a_handler_compiles_no_tokenizer(function: str) -> None:
    # pydantic reads the signature of a default_factory; for a builtin such as `list` that parses its
    # text signature with tokenize, whose regular expression takes ~2 ms to compile at cold start.
    assert not _import_handler(function)["tokenize_compiled"]


def test_events_without_resources_do_not_share_a_list() -> None:
    # The envelope's default `resources` is a plain [], which pydantic copies for each event.
    fields = {"id": "1", "source": "aws.events", "detail-type": "Scheduled Event", "time": datetime.now(UTC)}
    first, second = ScheduledEvent.model_validate(fields), ScheduledEvent.model_validate(fields)
    first.resources.append("arn:aws:events:us-east-1:123456789012:rule/x")
    assert second.resources == []
