"""The template parameters `nerloop up --param Name=Value` gives the local stack: parsed, checked as
CloudFormation would (type, bounds, pattern, allowed values) and as the functions' settings are, and
listed with their defaults for `nerloop up --help`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nerloop.settings import SettingsError, load_settings
from nerloop_local.emulator.deployment import LOCAL_PARAMETERS
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.template import load_template, parameter_defaults
from nerloop_local.usage import UsageError


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """`Name=Value` strings as a dict (the last of a repeated name wins); UsageError when malformed."""
    parsed: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param {item!r}: expected Name=Value (e.g. EntityTypes=SERVICE,VERSION)")
        parsed[name.strip()] = value.strip()
    return parsed


def check_parameter(name: str, value: str, spec: dict[str, Any]) -> str | None:
    """Why CloudFormation would refuse `value` for the parameter declared by `spec` (None: it would not)."""
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"is below the minimum {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"is above the maximum {spec['MaxValue']}"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"is shorter than {spec['MinLength']} characters"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"is longer than {spec['MaxLength']} characters"
    if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), value):
        return f"does not match {spec['AllowedPattern']}"
    allowed = [str(option) for option in spec.get("AllowedValues") or []]
    if allowed and value not in allowed:
        return f"is not one of {', '.join(allowed)}"
    return None


def stack_parameters(overrides: dict[str, str], saved: dict[str, str] | None = None) -> dict[str, str]:
    """The parameters to start the stack with: the workspace's saved ones (those the template still
    declares), then `overrides`; each checked against the template, then the functions' settings
    parsed from them. UsageError naming the parameter when any is wrong."""
    declared: dict[str, dict[str, Any]] = load_template().get("Parameters", {})
    for name, value in overrides.items():
        if name not in declared:
            raise UsageError(f"--param {name}: no such template parameter (known: {', '.join(declared)})")
        problem = check_parameter(name, value, declared[name])
        if problem:
            raise UsageError(f"--param {name}={value}: {problem}")
    merged = {name: value for name, value in (saved or {}).items() if name in declared}
    merged.update(overrides)
    stack = Stack.load({**LOCAL_PARAMETERS, **merged})
    try:
        for function in stack.functions():
            load_settings(stack.function_environment(function))
    except SettingsError as exc:
        given = " ".join(f"{name}={value}" for name, value in overrides.items()) or "the saved ones"
        raise UsageError(f"template parameters ({given}): {exc}") from exc
    return merged


def parameters_help() -> str:
    """The template's parameters and their defaults, for `nerloop up --help`."""
    defaults = parameter_defaults(load_template())
    lines = ["template parameters (--param Name=Value) and their defaults:"]
    for name, value in defaults.items():
        shown = "a local private workteam (set empty for none)" if name == "WorkteamArn" else value
        lines.append(f"  {name}={shown}")
    lines.append("A workspace remembers its parameters: a restart keeps them unless --param changes them.")
    return "\n".join(lines)
