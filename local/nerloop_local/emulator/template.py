"""Read template.yaml, the one source of the loop's wiring, for the local mode and the tests.

CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...) become their long forms, and `resolve`
substitutes parameters and resource names so rule patterns and settings can be used offline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = REPO / "template.yaml"

_SHORT_TAGS = {
    "Ref": "Ref", "Condition": "Condition", "GetAtt": "Fn::GetAtt", "Sub": "Fn::Sub", "Join": "Fn::Join",
    "Select": "Fn::Select", "Split": "Fn::Split", "If": "Fn::If", "Equals": "Fn::Equals", "Not": "Fn::Not",
    "And": "Fn::And", "Or": "Fn::Or", "FindInMap": "Fn::FindInMap", "ImportValue": "Fn::ImportValue",
    "GetAZs": "Fn::GetAZs", "Base64": "Fn::Base64", "Cidr": "Fn::Cidr", "Length": "Fn::Length",
    "ToJsonString": "Fn::ToJsonString",
}


# libyaml's loader when PyYAML was built with it: the template loads several times faster.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CloudFormationLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """A YAML loader that understands CloudFormation's short tags."""


def _construct(tag: str):  # type: ignore[no-untyped-def]
    long_name = _SHORT_TAGS[tag]

    def construct(loader: Any, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}

    return construct


for _tag in _SHORT_TAGS:
    CloudFormationLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, short tags in their long forms."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=CloudFormationLoader)  # nosec B506 # a SafeLoader subclass


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


def resolve(node: Any, names: dict[str, Any]) -> Any:
    """Substitute Ref, Fn::Sub, Fn::GetAtt, Fn::Join and Fn::If using `names`.

    `names` maps parameter names, pseudo parameters (AWS::Region ...), resource logical ids, and
    "Logical.Attribute" strings to values. Conditions are looked up as names too.
    """
    if isinstance(node, list):
        return [resolve(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, value), = node.items()
        if key == "Ref":
            return names[value]
        if key == "Fn::GetAtt":
            return names[".".join(value)]
        if key == "Fn::Sub":
            text, extra = (value, {}) if isinstance(value, str) else (value[0], resolve(value[1], names))
            lookup = {**names, **extra}
            return re.sub(r"\$\{([^}!]+)\}", lambda match: str(lookup[match.group(1)]), text)
        if key == "Fn::Join":
            sep, items = value
            return sep.join(str(item) for item in resolve(items, names))
        if key == "Fn::If":
            condition, when_true, when_false = value
            return resolve(when_true if names.get(f"Condition:{condition}") else when_false, names)
        if key == "Fn::Split":
            sep, text = value
            return str(resolve(text, names)).split(sep)
        if key == "Fn::Select":
            index, items = value
            return resolve(items, names)[int(index)]
    return {key: resolve(value, names) for key, value in node.items()}


def rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every EventBridge rule that targets a function: {function logical id: {event name: properties}}.

    Covers SAM's `Events` of type EventBridgeRule and Schedule on AWS::Serverless::Function.
    """
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") in ("EventBridgeRule", "Schedule", "ScheduleV2"):
                found.setdefault(logical_id, {})[event_name] = event
    return found
