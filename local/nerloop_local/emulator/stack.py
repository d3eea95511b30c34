"""The stack as the local mode and the tests see it: template.yaml loaded for given parameters, its
names and conditions resolved (deployment.py creates the emulated resources from them), and handlers
loaded from the folders it points at."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from nerloop_local.emulator.isolation import ACCOUNT, REGION
from nerloop_local.emulator.template import REPO, TEMPLATE_PATH, load_template, parameter_defaults, resolve

STACK_NAME = "nerloop"
# CloudFormation's id of the emulated stack (the UUID is a fixed stand-in, so names made from it are stable).
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/5b1f0e70-ad1c-11ef-9c8b-0affd3c2a1b1"
EVENTS_DIR = REPO / "events"


@dataclass
class Stack:
    """template.yaml with its names resolved for one emulated account."""

    template: dict[str, Any]
    parameters: dict[str, str]
    names: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, overrides: dict[str, str] | None = None, path: Path = TEMPLATE_PATH) -> Stack:
        template = load_template(path)
        parameters = {**parameter_defaults(template), **(overrides or {})}
        stack = cls(template, parameters)
        stack.names = stack._names()
        return stack

    def _names(self) -> dict[str, Any]:
        names: dict[str, Any] = {
            "AWS::StackName": STACK_NAME, "AWS::StackId": STACK_ID, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None,
        }
        for name, value in self.parameters.items():
            spec = self.template["Parameters"][name]
            names[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
        for condition, expression in (self.template.get("Conditions") or {}).items():
            names[f"Condition:{condition}"] = _evaluate_condition(expression, names)
        resources = self.template["Resources"]
        # Physical names: resources that name themselves keep their name; others get a stand-in for the
        # one CloudFormation generates (<stack>-<logical id>; in lower case for buckets, as S3 requires).
        for logical_id, resource in resources.items():
            generated = f"{STACK_NAME}-{logical_id}"
            names[logical_id] = generated.lower() if resource["Type"] == "AWS::S3::Bucket" else generated
        for logical_id, resource in resources.items():
            props = resource.get("Properties", {})
            for name_prop in ("BucketName", "TableName", "QueueName", "Name", "FunctionName", "RoleName"):
                if name_prop in props:
                    with contextlib.suppress(KeyError):  # a name made of what is known only on AWS
                        names[logical_id] = resolve(props[name_prop], names)
            kind = resource["Type"]
            physical = names[logical_id]
            if kind == "AWS::S3::Bucket":
                names[f"{logical_id}.Arn"] = f"arn:aws:s3:::{physical}"
            elif kind == "AWS::DynamoDB::Table":
                names[f"{logical_id}.Arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical}"
            elif kind == "AWS::SQS::Queue":
                names[f"{logical_id}.Arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical}"
                names[logical_id] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
                names[f"{logical_id}.QueueName"] = physical
            elif kind == "AWS::IAM::Role":
                names[f"{logical_id}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{physical}"
            elif kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
                # A fixed stand-in, the one the sample events name; the local runtime replaces it
                # with what the real custom resource handler returns.
                names[f"{logical_id}.Arn"] = names[f"{logical_id}.Arns"] = (
                    f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/{STACK_NAME}-review"
                )
            elif kind == "AWS::SageMaker::HumanTaskUi":
                names[f"{logical_id}.HumanTaskUiArn"] = (
                    f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/{STACK_NAME}-review-ui"
                )
            elif kind == "AWS::Serverless::Function":
                names[f"{logical_id}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}"
            else:
                names.setdefault(f"{logical_id}.Arn", f"arn:aws:local:{REGION}:{ACCOUNT}:{physical}")
        return names

    def resolve(self, node: Any) -> Any:
        return resolve(node, self.names)

    def resource(self, logical_id: str) -> dict[str, Any]:
        return self.template["Resources"][logical_id]

    def physical_name(self, logical_id: str) -> str:
        return str(self.names[logical_id])

    def functions(self) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    def function_setting(self, logical_id: str, name: str, default: Any = None) -> Any:
        """A function property (Runtime, Timeout, MemorySize, ...): its own, else the Globals', else `default`."""
        own = self.functions()[logical_id].get("Properties", {})
        globals_ = (self.template.get("Globals") or {}).get("Function") or {}
        return own.get(name, globals_.get(name, default))

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The environment a function gets on AWS: Globals merged with its own variables."""
        global_env = (self.template.get("Globals", {}).get("Function", {}).get("Environment") or {})
        own_env = self.functions()[logical_id].get("Properties", {}).get("Environment") or {}
        variables = {**global_env.get("Variables", {}), **own_env.get("Variables", {})}
        return {name: str(self.resolve(value)) for name, value in variables.items()}

    def labeling_job_prefix(self) -> str:
        """The prefix of the Ground Truth jobs this stack takes (the parameter, or the stack's own default)."""
        variables = self.template["Globals"]["Function"]["Environment"]["Variables"]
        return str(self.resolve(variables["LABELING_JOB_PREFIX"]))

    def load_handler(self, logical_id: str) -> Any:
        """Import a function's handler from its CodeUri folder, as Lambda would."""
        props = self.functions()[logical_id]["Properties"]
        module_name, handler_name = props.get("Handler", "app.lambda_handler").rsplit(".", 1)
        code_dir = REPO / props["CodeUri"]
        return getattr(load_module(code_dir / f"{module_name}.py", f"nerloop_fn_{logical_id}"), handler_name)


def load_module(path: Path, name: str) -> ModuleType:
    """Import a file under a unique module name (every function's file is called app.py)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses defined in the file look their module up there
    spec.loader.exec_module(module)
    return module


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/<name>.json."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _evaluate_condition(expression: Any, names: dict[str, Any]) -> bool:
    if isinstance(expression, dict) and len(expression) == 1:
        (key, value), = expression.items()
        if key == "Fn::Equals":
            left, right = (resolve(item, names) for item in value)
            return bool(left == right)
        if key == "Fn::Not":
            return not _evaluate_condition(value[0], names)
        if key == "Fn::And":
            return all(_evaluate_condition(item, names) for item in value)
        if key == "Fn::Or":
            return any(_evaluate_condition(item, names) for item in value)
        if key == "Condition":
            return bool(names[f"Condition:{value}"])
    raise ValueError(f"unsupported condition {expression!r}")
