"""template.yaml is deployable and least-privilege: each function's policy names its own actions and
resources, roles are passed only to the service that assumes them, every rule target has a
dead-letter queue, the bucket is locked down, and names agree with nerloop's constants and code."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from nerloop import constants, custom_resources
from nerloop.a2i import build_input_content
from nerloop.comprehend_output import DetectedEntity
from nerloop.constants import MAX_DETECTION_LINES
from nerloop.settings import Settings, SettingsError, load_settings
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.template import REPO, rules

WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/nerloop-reviewers"
STACK = Stack.load()  # no workteam (the default)
WITH_WORKTEAM = Stack.load({"WorkteamArn": WORKTEAM})
TEMPLATE = STACK.template
RESOURCES = TEMPLATE["Resources"]
RULES = rules(TEMPLATE)

# Actions with no resource-level permission: "*" is the only resource they take (the Service
# Authorization Reference lists no resource type for them).
STAR_ACTIONS = {"comprehend:ListEntityRecognizers", "comprehend:ListEntitiesDetectionJobs", "sagemaker:ListHumanLoops",
                "sagemaker:ListFlowDefinitions",
                "cloudwatch:PutMetricData"}

NO_VALUE = {"Ref": "AWS::NoValue"}


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {logical_id: r for logical_id, r in RESOURCES.items() if r["Type"] == kind}


def custom_resource_functions() -> set[str]:
    return {r["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
            for r in RESOURCES.values() if r["Type"].startswith("Custom::")}


def stage_functions() -> list[str]:
    return sorted(set(STACK.functions()) - custom_resource_functions())


def branches(node: Any) -> list[Any]:
    """Both sides of an Fn::If (without AWS::NoValue), or the node itself."""
    if isinstance(node, dict) and "Fn::If" in node:
        return [leaf for side in node["Fn::If"][1:] if side != NO_VALUE for leaf in branches(side)]
    return [node]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policies: list[Any]) -> list[dict[str, Any]]:
    """Every statement of a list of inline policies (SAM's function Policies or an IAM role's)."""
    found = []
    for policy in policies:
        for document in branches(policy):
            assert isinstance(document, dict), f"not an inline policy: {document!r}"
            document = document.get("PolicyDocument", document)
            assert "Statement" in document, f"only inline statements, no policy templates: {document!r}"
            found.extend(as_list(document["Statement"]))
    return found


def function_statements(function: str) -> list[dict[str, Any]]:
    return statements(STACK.functions()[function]["Properties"].get("Policies", []))


def outside_flywheel_mode(policies: list[Any]) -> list[Any]:
    """The policies that are not only in TrainingMode Flywheel (issue 15 part 2)."""
    return [p for p in policies if not (isinstance(p, dict) and p.get("Fn::If", [None])[0] == "FlywheelMode")]


def all_identity_statements() -> dict[str, list[dict[str, Any]]]:
    found = {function: function_statements(function) for function in STACK.functions()}
    for logical_id, role in of_type("AWS::IAM::Role").items():
        found[logical_id] = statements(role["Properties"].get("Policies", []))
    return found


def sub_text(node: Any) -> str:
    """The text of a Fn::Sub (or a plain string) to inspect, unresolved."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Sub" in node:
        value = node["Fn::Sub"]
        return value if isinstance(value, str) else value[0]
    return ""


# --- wiring -----------------------------------------------------------------------------------------------


def test_every_function_has_a_rule_or_serves_a_custom_resource():
    for function in STACK.functions():
        assert function in RULES or function in custom_resource_functions(), f"{function} is never invoked"


def test_every_function_is_a_thin_handler_in_its_code_uri():
    for function, resource in STACK.functions().items():
        props = resource["Properties"]
        module, handler = props["Handler"].rsplit(".", 1)
        source = REPO / props["CodeUri"] / f"{module}.py"
        assert source.is_file(), f"{function}: {source} is missing"
        assert f"def {handler}(" in source.read_text(encoding="utf-8"), f"{function}: no {handler} in {source}"


def test_functions_run_python_3_11_with_the_layer():
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.11"
    assert function_globals["Layers"] == [{"Ref": "CommonLayer"}]
    layer = RESOURCES["CommonLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    content = REPO / layer["Properties"]["ContentUri"]
    assert (content / "requirements.txt").is_file() and (content / "nerloop" / "__init__.py").is_file()


def requirement_names(lines: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~!; ]", line.strip(), maxsplit=1)[0].lower()
            for line in lines if line.strip() and not line.strip().startswith("#")}


def test_the_layer_ships_the_runtime_dependencies_and_nothing_local():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = requirement_names(project["dependencies"] + project["optional-dependencies"]["dev"])
    layer = requirement_names((REPO / "layers/common/requirements.txt").read_text(encoding="utf-8").splitlines())
    assert {"boto3", "aws-lambda-powertools", "pydantic"} <= layer <= declared
    assert not layer & {"moto", "python-crfsuite", "pyyaml", "pytest"}


# --- environment ------------------------------------------------------------------------------------------


def required_variables() -> set[str]:
    return {info.alias for info in Settings.model_fields.values() if info.is_required() and info.alias}


@pytest.mark.parametrize("function", stage_functions())
def test_every_stage_gets_every_required_variable_and_they_parse(function):
    environment = STACK.function_environment(function)
    assert required_variables() <= set(environment), required_variables() - set(environment)
    settings = load_settings(environment)
    assert settings.data_bucket == STACK.physical_name("DataBucket")
    assert settings.state_table == STACK.physical_name("StateTable")


def test_route_gets_the_flow_definition_and_preprocess_the_labeling_role():
    assert WITH_WORKTEAM.function_environment("RouteFunction")["FLOW_DEFINITION_ARN"].startswith(
        "arn:aws:sagemaker:")
    assert WITH_WORKTEAM.function_environment("PreprocessFunction")["LABELING_ROLE_ARN"].startswith(
        "arn:aws:iam::")
    # Without a workteam there is no labeling role: the variable is empty, not missing.
    assert STACK.function_environment("PreprocessFunction")["LABELING_ROLE_ARN"] == ""


def test_each_function_names_its_own_service():
    names = [STACK.function_environment(f)["POWERTOOLS_SERVICE_NAME"] for f in STACK.functions()]
    assert len(set(names)) == len(names)


# --- least privilege --------------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", sorted(all_identity_statements()))
def test_policies_name_their_resources(owner):
    for statement in all_identity_statements()[owner]:
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), f"{owner}: wildcard action in {statement}"
        assert statement["Effect"] == "Allow", f"{owner}: {statement}"
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= STAR_ACTIONS, f"{owner}: '*' resource for {actions}"
            assert as_list(statement["Resource"]) == ["*"], f"{owner}: mixes '*' with named resources"


def test_a_star_resource_is_explained_in_the_template():
    text = (REPO / "template.yaml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(text):
        if line.strip() in ('Resource: "*"', "Resource: '*'"):
            context = "\n".join(text[max(0, number - 3):number])
            assert "no resource-level permission" in context, f"template.yaml:{number + 1} has an unexplained '*'"


def test_only_passrole_statements_may_pass_roles_and_only_to_their_service():
    trusted = {}
    for logical_id, role in of_type("AWS::IAM::Role").items():
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        (principal,) = {st["Principal"]["Service"] for st in trust}
        trusted[logical_id] = principal
    for owner, found in all_identity_statements().items():
        for statement in found:
            if "iam:PassRole" not in as_list(statement["Action"]):
                continue
            assert as_list(statement["Action"]) == ["iam:PassRole"], f"{owner}: PassRole shares a statement"
            role = statement["Resource"]["Fn::GetAtt"][0]
            service = statement["Condition"]["StringEquals"]["iam:PassedToService"]
            assert service == trusted[role], f"{owner} passes {role} to {service}, but {trusted[role]} assumes it"


def test_passrole_goes_only_where_a_role_is_handed_to_a_service():
    passers = {owner: {st["Resource"]["Fn::GetAtt"][0] for st in found if "iam:PassRole" in as_list(st["Action"])}
               for owner, found in all_identity_statements().items()}
    assert {owner: roles for owner, roles in passers.items() if roles} == {
        "TrainFunction": {"ComprehendDataAccessRole"},
        "DetectFunction": {"ComprehendDataAccessRole"},
        "WatchFunction": {"ComprehendDataAccessRole"},  # starts detection jobs queued for a slot
        "PreprocessFunction": {"LabelingRole"},
        # the review's flow definition; in TrainingMode Flywheel, CreateFlywheel's data access role (issue 15)
        "FlowDefinitionFunction": {"ReviewExecutionRole", "ComprehendDataAccessRole"},
    }


def trust_statements(logical_id: str) -> list[dict[str, Any]]:
    return as_list(RESOURCES[logical_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"])


def test_the_comprehend_role_trusts_only_this_account():
    # Comprehend documents the aws:SourceAccount it sends when it assumes a data access role.
    (statement,) = trust_statements("ComprehendDataAccessRole")
    assert statement["Principal"] == {"Service": "comprehend.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


@pytest.mark.parametrize("role", ["LabelingRole", "ReviewExecutionRole"])
def test_roles_ground_truth_and_a2i_assume_ask_for_no_key_sagemaker_does_not_send(role):
    # Neither Ground Truth nor A2I is on SageMaker's list of features that send aws:SourceAccount or
    # aws:SourceArn; a condition on them would refuse every labeling job and every human loop.
    (statement,) = trust_statements(role)
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert "Condition" not in statement, role


def test_every_service_role_is_covered_by_a_trust_test():
    assert set(of_type("AWS::IAM::Role")) == {"ComprehendDataAccessRole", "LabelingRole", "ReviewExecutionRole"}


def role_grants(logical_id: str) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """{action: [(resource, condition)]} of an IAM role's inline policies."""
    grants: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for statement in statements(RESOURCES[logical_id]["Properties"]["Policies"]):
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                grants.setdefault(action, []).append((resource, statement.get("Condition", {})))
    return grants


def test_the_labeling_role_has_what_ground_truth_built_in_task_types_need():
    # SageMaker's execution role requirements for built-in task types: ListBucket and GetBucketLocation
    # on the bucket, GetObject, PutObject and AbortMultipartUpload on the objects it reads and writes.
    grants = role_grants("LabelingRole")
    bucket = {"Fn::GetAtt": ["DataBucket", "Arn"]}
    for action in ("s3:ListBucket", "s3:GetBucketLocation"):
        assert (bucket, {}) in grants.get(action, []), f"{action} on the whole bucket, unconditioned"
    output = f"${{DataBucket.Arn}}/{constants.LABELING_PREFIX}*"
    for action in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"):
        assert output in {sub_text(resource) for resource, _ in grants.get(action, [])}, action
    assert f"${{DataBucket.Arn}}/{constants.BATCHES_PREFIX}*" in {
        sub_text(resource) for resource, _ in grants["s3:GetObject"]}


# --- what the code calls is exactly what it may do ---------------------------------------------------------
#
# The AWS calls a function's code can make are found statically: from its handler, follow every
# function and class of the nerloop package it names, and collect the botocore operations called on
# clients. A name that is both one of ours and an operation (state.jobs.list) counts only when called
# on a client.

SERVICES = {"s3": "s3", "sagemaker": "sagemaker", "sagemaker-a2i-runtime": "sagemaker",
            "comprehend": "comprehend", "events": "events", "dynamodb": "dynamodb", "cloudformation": "cloudformation"}
# s3transfer's helpers and the operations S3 authorizes under another action.
S3_HELPERS = {"upload_fileobj": {"s3:PutObject"}, "upload_file": {"s3:PutObject"},
              "download_fileobj": {"s3:GetObject"}, "download_file": {"s3:GetObject"},
              "head_object": {"s3:GetObject"}, "copy_object": {"s3:GetObject", "s3:PutObject"},
              # ListObjectsV2 is authorized as s3:ListBucket (API reference, ListObjectsV2, Permissions).
              "list_objects_v2": {"s3:ListBucket"}}
CLIENT_NAMES = {"s3", "sagemaker", "comprehend", "a2i", "events", "table", "a2i_client", "client", "resource",
                "cloudformation"}
# Granted without a call in our code: Powertools idempotency's own table calls, the multipart upload
# clean-up of s3transfer, and PassRole (authorized inside the call that passes the role).
IMPLIED = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
           "s3:AbortMultipartUpload", "iam:PassRole"}
LIBRARY = REPO / "layers/common"


def operations() -> dict[str, set[str]]:
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    found: dict[str, set[str]] = {}
    for service, prefix in SERVICES.items():
        for operation in session.get_service_model(service).operation_names:
            found.setdefault(xform_name(operation), set()).add(f"{prefix}:{operation}")
    # A transaction is authorized by its items' actions, not one of its own: called_actions adds them from
    # the items the code builds (TRANSACTION_ITEM_ACTIONS).
    return {**found, **S3_HELPERS, "transact_write_items": set()}


def transaction_item_actions() -> dict[str, str]:
    """{TransactWriteItem member: the IAM action that authorizes it}. "Permissions for Put, Update, Delete
    ... are governed by the permissions used for the underlying PutItem, UpdateItem, DeleteItem ...
    operations. For the ConditionCheck action, you can use the dynamodb:ConditionCheckItem permission"
    (DynamoDB Developer Guide, Using IAM with DynamoDB transactions,
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html)."""
    import botocore.session

    shape = botocore.session.get_session().get_service_model("dynamodb").shape_for("TransactWriteItem")
    return {member: f"dynamodb:{member}Item" for member in shape.members}


OPERATIONS = operations()
TRANSACTION_ITEM_ACTIONS = transaction_item_actions()


def imported_modules(path: Path, seen: set[Path]) -> set[Path]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nerloop":
            for name in [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]:
                base = LIBRARY / name.replace(".", "/")
                module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
                if module.exists() and module not in seen:
                    seen.add(module)
                    imported_modules(module, seen)
    return seen


def called_actions(function: str) -> set[str]:
    """The IAM actions of every AWS operation reachable from the function's handler; for a transaction, the
    actions of the kinds of item (a dict keyed Put, Update, Delete or ConditionCheck) the reachable code builds."""
    actions, kinds = reachable_calls(function)
    if "transact_write_items" in kinds:
        actions |= {TRANSACTION_ITEM_ACTIONS[kind] for kind in kinds - {"transact_write_items"}}
    return actions


def transaction_kinds(function: str) -> set[str]:
    """The kinds of transaction item the function's code builds, if it writes transactions at all."""
    _, kinds = reachable_calls(function)
    return kinds - {"transact_write_items"} if "transact_write_items" in kinds else set()


def reachable_calls(function: str) -> tuple[set[str], set[str]]:
    """(IAM actions of the operations reachable from the handler, transaction item kinds built there plus
    "transact_write_items" when one is written)."""
    props = STACK.functions()[function]["Properties"]
    module, handler = props["Handler"].rsplit(".", 1)
    app = REPO / props["CodeUri"] / f"{module}.py"
    definitions: dict[str, list[ast.AST]] = {}
    for path in imported_modules(app, {app}):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                definitions.setdefault(node.name, []).append(node)
            elif isinstance(node, ast.ClassDef):  # calling a class may reach any of its methods
                definitions.setdefault(node.name, []).extend(
                    item for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef))
    todo, seen, actions, kinds = list(definitions[handler]), set(), set(), set()
    while todo:
        definition = todo.pop()
        if id(definition) in seen:
            continue
        seen.add(id(definition))
        for node in ast.walk(definition):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                todo.extend(definitions.get(node.id, []))
            if isinstance(node, ast.Dict):
                kinds |= {key.value for key in node.keys
                          if isinstance(key, ast.Constant) and key.value in TRANSACTION_ITEM_ACTIONS}
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            todo.extend(definitions.get(name, []))
            if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                actions |= OPERATIONS.get(str(node.args[0].value), set())
            receiver = ast.unparse(node.func.value).split(".")[-1]
            if name in OPERATIONS and (name not in definitions or receiver in CLIENT_NAMES):
                actions |= OPERATIONS[name]
                if name == "transact_write_items":
                    kinds.add(name)
    return actions, kinds


def granted_actions(function: str) -> set[str]:
    return {action for st in function_statements(function) for action in as_list(st["Action"])}


def test_the_call_finder_finds_calls():
    assert {"comprehend:CreateEntityRecognizer", "s3:GetObject"} <= called_actions("TrainFunction")
    assert "sagemaker:StartHumanLoop" in called_actions("RouteFunction")
    assert "sagemaker:StartHumanLoop" not in called_actions("MergeFunction")  # merge imports a2i, never starts


def test_a_transaction_is_authorized_by_the_actions_of_the_items_it_holds():
    assert TRANSACTION_ITEM_ACTIONS == {
        "Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
        "ConditionCheck": "dynamodb:ConditionCheckItem"}
    # merge's transactions put the gold record, update the pool and the loop, delete the open-loop marker
    assert transaction_kinds("MergeFunction") == {"Put", "Update", "Delete"}
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= called_actions("MergeFunction")
    # no code builds a ConditionCheck, so no function needs (or may have) dynamodb:ConditionCheckItem
    assert all("dynamodb:ConditionCheckItem" not in called_actions(f) for f in STACK.functions())
    assert transaction_kinds("FlowDefinitionFunction") == set()


@pytest.mark.parametrize("function", sorted(STACK.functions()))
def test_every_aws_call_a_function_makes_is_granted(function):
    missing = called_actions(function) - granted_actions(function)
    assert not missing, f"{function} calls {sorted(missing)} but its Policies in template.yaml do not allow it"


@pytest.mark.parametrize("function", sorted(STACK.functions()))
def test_a_function_may_do_nothing_its_code_does_not_do(function):
    unused = granted_actions(function) - called_actions(function) - IMPLIED
    assert not unused, f"{function} is granted {sorted(unused)} but its code never calls them: remove them"


def s3_grants(function: str) -> dict[str, set[str]]:
    """{action: object key patterns} of a function's S3 statements."""
    grants: dict[str, set[str]] = {}
    for statement in function_statements(function):
        for action in as_list(statement["Action"]):
            if action.startswith("s3:"):
                keys = {sub_text(r).removeprefix("${DataBucket.Arn}/") for r in as_list(statement["Resource"])}
                grants.setdefault(action, set()).update(keys)
    return grants


def test_each_function_reads_and_writes_only_its_own_prefixes():
    c = constants
    own = {
        "PreprocessFunction": ({c.RAW_PREFIX}, {c.BATCHES_PREFIX, c.LABELING_PREFIX, c.QUARANTINE_PREFIX}),
        # checkpoints/convert/: where a conversion that ran short of time stopped (issue 13)
        "ConvertFunction": ({c.LABELING_PREFIX, f"{c.CHECKPOINTS_PREFIX}convert/"},
                            {c.TRAINING_PREFIX, c.QUARANTINE_PREFIX, f"{c.CHECKPOINTS_PREFIX}convert/"}),
        "TrainFunction": ({c.TRAINING_PREFIX}, {c.REPORTS_PREFIX}),
        # the gate: a snapshot's test set, its evaluation job's output, the versions' results
        "DetectFunction": ({c.BATCHES_PREFIX, c.TRAINING_PREFIX, c.EVALUATION_PREFIX},
                           {c.DETECTION_INPUT_PREFIX, c.TRAINING_PREFIX, c.EVALUATION_RESULTS_PREFIX}),
        "RouteFunction": ({"detection/", f"{c.CHECKPOINTS_PREFIX}route/"},
                          {c.QUARANTINE_PREFIX, f"{c.CHECKPOINTS_PREFIX}route/"}),
        "MergeFunction": ({c.REVIEW_OUTPUT_PREFIX}, {c.TRAINING_PREFIX, c.QUARANTINE_PREFIX}),
        # a retrain started by the time limit; a loop ended without its event reaching merge
        "WatchFunction": ({c.REVIEW_OUTPUT_PREFIX}, {c.TRAINING_PREFIX, c.QUARANTINE_PREFIX}),
    }
    assert c.DETECTION_OUTPUT_PREFIX.startswith("detection/")
    for function, (reads, writes) in own.items():
        grants = s3_grants(function)
        assert grants.get("s3:GetObject", set()) == {f"{prefix}*" for prefix in reads}, function
        assert grants["s3:PutObject"] == {f"{prefix}*" for prefix in writes}, function


# What the functions are told the prefix is; the grants and the convert rule must use the same.
LABELING_JOB_PREFIX = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["LABELING_JOB_PREFIX"]


def test_the_labeling_job_prefix_is_the_stack_s_own_unless_one_is_given():
    # Two stacks in one account: with the default, each takes only its own labeling jobs.
    assert STACK.parameters["LabelingJobPrefix"] == ""
    other = Stack.load()
    other.names["AWS::StackId"] = (
        "arn:aws:cloudformation:us-east-1:123456789012:stack/other/0d4c2e9a-1111-2222-3333-444455556666")
    assert STACK.labeling_job_prefix() != other.labeling_job_prefix() == "nerloop-0d4c2e9a"
    assert Stack.load({"LabelingJobPrefix": "team-a"}).labeling_job_prefix() == "team-a"


def test_the_labeling_job_prefix_is_lower_case_as_sagemaker_arns_may_hold_names():
    pattern = re.compile(TEMPLATE["Parameters"]["LabelingJobPrefix"]["AllowedPattern"])
    assert pattern.match("") and pattern.match("team-a2")
    assert not pattern.match("Team-A") and not pattern.match("team_a")
    assert re.fullmatch(r"[a-z0-9-]+", STACK.labeling_job_prefix())


def test_the_convert_rule_takes_the_jobs_of_the_same_prefix():
    pattern = RULES["ConvertFunction"]["LabelingJobCompleted"]["Properties"]["Pattern"]
    (prefix,) = pattern["resources"]
    assert prefix["prefix"]["Fn::Sub"][0].endswith("labeling-job/${Prefix}")
    assert prefix["prefix"]["Fn::Sub"][1] == {"Prefix": LABELING_JOB_PREFIX}


def test_comprehend_and_sagemaker_grants_name_this_stack_s_resources():
    for function in STACK.functions():
        # A flywheel's models are named by Comprehend (issue 15 part 2): see test_template_flywheel.py.
        for statement in statements(outside_flywheel_mode(STACK.functions()[function]["Properties"]["Policies"])):
            for resource in as_list(statement["Resource"]):
                text = sub_text(resource)
                if ":comprehend:" in text and "entity-recognizer" in text:
                    assert "entity-recognizer/${RecognizerName}" in text, (function, text)
                if ":labeling-job/" in text:
                    assert text.endswith("labeling-job/${Prefix}*"), (function, text)
                    assert resource["Fn::Sub"][1] == {"Prefix": LABELING_JOB_PREFIX}, function
                if ":flow-definition/" in text:
                    assert text.endswith("flow-definition/${AWS::StackName}-review-*"), (function, text)


# --- data -------------------------------------------------------------------------------------------------


def test_the_bucket_is_encrypted_versioned_private_and_sends_events():
    props = RESOURCES["DataBucket"]["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    assert any("NoncurrentVersionExpiration" in r for r in props["LifecycleConfiguration"]["Rules"])


def test_the_bucket_refuses_requests_without_tls():
    (policy,) = [p for p in of_type("AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {
        "Ref": "DataBucket"}]
    statements_ = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements_ if s["Effect"] == "Deny"
            and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert deny and deny[0]["Action"] == "s3:*" and deny[0]["Principal"] == "*"
    resources = [sub_text(r) or r for r in deny[0]["Resource"]]
    assert {"Fn::GetAtt": ["DataBucket", "Arn"]} in resources and "${DataBucket.Arn}/*" in resources


def test_data_outlives_the_stack():
    for logical_id in ("DataBucket", "StateTable"):
        assert RESOURCES[logical_id]["DeletionPolicy"] == "Retain"
        assert RESOURCES[logical_id]["UpdateReplacePolicy"] == "Retain"


NAME_PROPERTIES = {"AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName",
                   "AWS::IAM::Role": "RoleName", "AWS::Serverless::Function": "FunctionName"}


def test_what_the_stack_keeps_does_not_block_a_stack_of_the_same_name():
    # A retained resource outlives the stack with its name: were the name fixed, creating the stack again
    # would fail on it. CloudFormation generates a new name when none is given.
    retained = {logical_id: r for logical_id, r in RESOURCES.items() if r.get("DeletionPolicy") == "Retain"}
    assert set(retained) == {"DataBucket", "StateTable"}
    for logical_id, resource in retained.items():
        assert NAME_PROPERTIES[resource["Type"]] not in resource["Properties"], logical_id


def test_the_state_table_is_encrypted_and_recoverable():
    props = RESOURCES["StateTable"]["Properties"]
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def key_patterns() -> list[str]:
    """Every object key pattern the template writes down: rule filters, IAM resources, conditions."""
    found = []
    for events in RULES.values():
        for event in events.values():
            key = event["Properties"].get("Pattern", {}).get("detail", {}).get("object", {}).get("key", [])
            found += [matcher["wildcard"] for matcher in key]
    for owner_statements in all_identity_statements().values():
        for statement in owner_statements:
            found += [sub_text(r).removeprefix("${DataBucket.Arn}/") for r in as_list(statement["Resource"])
                      if sub_text(r).startswith("${DataBucket.Arn}/")]
            found += as_list(statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", []))
    found.append(sub_text(RESOURCES["FlowDefinition"]["Properties"]["OutputPath"]).removeprefix("s3://${DataBucket}/"))
    return found


def test_every_key_pattern_uses_a_prefix_of_nerloop_constants():
    prefixes = [value for name, value in vars(constants).items() if name.endswith("_PREFIX")]
    patterns = key_patterns()
    assert len(patterns) > 20
    for pattern in patterns:
        assert pattern.startswith(tuple(prefixes)) or pattern == "detection/*", pattern


def test_rules_filter_on_the_constants():
    def key_of(function: str) -> str:
        # the function's S3 rule (route also takes its own continuation, issue 13)
        (event,) = [e for e in RULES[function].values() if e["Properties"]["Pattern"]["source"] == ["aws.s3"]]
        return event["Properties"]["Pattern"]["detail"]["object"]["key"][0]["wildcard"]

    assert key_of("PreprocessFunction") == f"{constants.RAW_PREFIX}*.txt"
    assert key_of("TrainFunction") == f"{constants.TRAINING_PREFIX}*/{constants.ANNOTATIONS_FILE}"
    assert key_of("RouteFunction").startswith(constants.DETECTION_OUTPUT_PREFIX)
    detect = RULES["DetectFunction"]
    assert {rule["Properties"]["Pattern"]["source"][0] for rule in detect.values()} == {constants.EVENT_SOURCE}
    assert sorted(rule["Properties"]["Pattern"]["detail-type"][0] for rule in detect.values()) == [
        constants.DETECTION_JOB_STATUS_DETAIL_TYPE, constants.DOCUMENTS_ADDED_DETAIL_TYPE,
        constants.RECOGNIZER_STATUS_DETAIL_TYPE]
    (merge,) = RULES["MergeFunction"].values()
    assert merge["Properties"]["Pattern"]["detail-type"] == [constants.HUMAN_LOOP_DETAIL_TYPE]
    convert = RULES["ConvertFunction"]
    completed = convert["LabelingJobCompleted"]["Properties"]["Pattern"]
    assert completed["detail-type"] == [constants.LABELING_JOB_DETAIL_TYPE]
    # issue 13: the convert stage's own continuation comes back to it
    continued = convert["ConversionContinued"]["Properties"]["Pattern"]
    assert continued["source"] == [constants.EVENT_SOURCE]
    assert continued["detail-type"] == [constants.STAGE_CONTINUED_DETAIL_TYPE]
    assert RULES["RouteFunction"]["RoutingContinued"]["Properties"]["Pattern"]["detail"] == {"stage": ["route"]}
    assert sub_text(RESOURCES["FlowDefinition"]["Properties"]["OutputPath"]).endswith(
        f"/{constants.REVIEW_OUTPUT_PREFIX}")


# --- failures go somewhere ---------------------------------------------------------------------------------


def rule_arn(event: dict[str, Any]) -> str:
    name = event["Properties"].get("RuleName") or event["Properties"].get("Name")
    assert name, "a rule with a dead-letter queue needs a name, for the queue policy's aws:SourceArn"
    return f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{sub_text(name)}"


def queue_policy_for(queue: str) -> list[dict[str, Any]]:
    (policy,) = [p for p in of_type("AWS::SQS::QueuePolicy").values()
                 if p["Properties"]["Queues"] == [{"Ref": queue}]]
    return policy["Properties"]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize("function", sorted(RULES))
def test_every_rule_target_and_its_async_failures_have_a_dead_letter_queue(function):
    props = STACK.functions()[function]["Properties"]
    on_failure = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    (queue,) = {on_failure["Destination"]["Fn::GetAtt"][0]}
    for event in RULES[function].values():
        # The rule's own dead-letter queue is the function's failure destination.
        assert event["Properties"]["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert set(event["Properties"]["RetryPolicy"]) == {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"}
        policy = queue_policy_for(queue)
        from_rule = [s for s in policy if s["Principal"] == {"Service": "events.amazonaws.com"}]
        assert from_rule and from_rule[0]["Action"] == "sqs:SendMessage"
        sources = [sub_text(arn) for arn in as_list(from_rule[0]["Condition"]["ArnEquals"]["aws:SourceArn"])]
        assert rule_arn(event) in sources
        from_lambda = [s for s in policy if s["Principal"] == {"AWS": {"Fn::GetAtt": [f"{function}Role", "Arn"]}}]
        assert from_lambda and from_lambda[0]["Action"] == "sqs:SendMessage"
    queue_props = RESOURCES[queue]["Properties"]
    assert queue_props["SqsManagedSseEnabled"] is True
    assert queue_props["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_every_dead_letter_queue_has_an_alarm():
    watched = {a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
               for a in of_type("AWS::CloudWatch::Alarm").values()
               if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"}
    assert watched == set(of_type("AWS::SQS::Queue"))


def test_failed_trainings_raise_an_alarm_on_the_metric_detect_emits():
    (alarm,) = [a["Properties"] for a in of_type("AWS::CloudWatch::Alarm").values()
                if a["Properties"]["MetricName"] == "RecognizerTrainingFailed"]
    assert alarm["Namespace"] == STACK.function_environment("DetectFunction")["POWERTOOLS_METRICS_NAMESPACE"]
    # Powertools Metrics puts the service name in a "service" dimension.
    assert alarm["Dimensions"] == [{"Name": "service",
                                    "Value": STACK.function_environment("DetectFunction")["POWERTOOLS_SERVICE_NAME"]}]
    detect_source = (REPO / "layers/common/nerloop/stages/detect.py").read_text(encoding="utf-8")
    assert 'name="RecognizerTrainingFailed"' in detect_source


# --- the review workflow ------------------------------------------------------------------------------------


UI = RESOURCES["ReviewTaskUi"]["Properties"]
UI_CONTENT = UI["UiTemplate"]["Content"]


def test_the_worker_template_name_follows_its_content():
    digest = hashlib.sha256(UI_CONTENT.encode("utf-8")).hexdigest()[:8]
    assert sub_text(UI["HumanTaskUiName"]).endswith(f"-{digest}"), (
        f"the worker template changed: end HumanTaskUiName in -{digest} (a HumanTaskUi cannot be updated)")


def test_the_worker_template_answers_under_the_shared_element_name():
    assert f'<crowd-entity-annotation\n  name="{constants.CROWD_ELEMENT_NAME}"' in UI_CONTENT
    # The element submits by itself: wrapped in a crowd-form it would submit twice.
    assert "<crowd-form" not in UI_CONTENT


def test_the_worker_template_reads_what_the_route_stage_sends():
    used = set(re.findall(r"task\.input\.(\w+)", UI_CONTENT))
    content = build_input_content("a" * 64, "Amazon S3 adds a feature", [
        DetectedEntity(begin=0, end=9, score=0.5, text="Amazon S3", type="SERVICE")], "v1", ["SERVICE", "VERSION"])
    sent = json.loads(content)
    assert used == {"text", "labels", "initialValue"}
    assert used <= set(sent), used - set(sent)
    assert sent["initialValue"] == [{"label": "SERVICE", "startOffset": 0, "endOffset": 9}]
    for key in ("labels", "initialValue"):
        assert f"{{{{ task.input.{key} | to_json | escape }}}}" in UI_CONTENT


def test_the_flow_definition_properties_make_a_valid_flow_definition():
    props = WITH_WORKTEAM.resolve(RESOURCES["FlowDefinition"]["Properties"])
    parsed = custom_resources.FlowDefinitionProperties.model_validate(props)
    assert parsed.enabled and parsed.task_count == 1
    assert parsed.output_path == f"s3://{STACK.physical_name('DataBucket')}/{constants.REVIEW_OUTPUT_PREFIX}"
    assert custom_resources.FLOW_DEFINITION_NAME.match(parsed.physical_name())
    # Without a workteam the same resource exists but creates nothing.
    assert not custom_resources.FlowDefinitionProperties.model_validate(
        STACK.resolve(RESOURCES["FlowDefinition"]["Properties"])).enabled


def test_only_attributes_the_custom_resources_return_are_used():
    returned = {"FlowDefinition": set(custom_resources.FLOW_DEFINITION_ATTRIBUTES),
                "RecognizerCleanup": set(custom_resources.RECOGNIZER_CLEANUP_ATTRIBUTES)}
    text = (REPO / "template.yaml").read_text(encoding="utf-8")
    used = re.findall(r"(FlowDefinition|RecognizerCleanup)\.(\w+)", text)
    assert used
    for resource, attribute in used:
        assert attribute in returned[resource], f"{resource}.{attribute} is not returned by the custom resource"
    assert RESOURCES["FlowDefinition"]["Type"] == custom_resources.FLOW_DEFINITION_TYPE
    assert RESOURCES["RecognizerCleanup"]["Type"] == custom_resources.RECOGNIZER_CLEANUP_TYPE


def test_the_stages_that_make_recognizer_versions_go_before_the_cleanup():
    for function in ("TrainFunction", "DetectFunction", "WatchFunction"):
        assert RESOURCES[function].get("DependsOn") == "RecognizerCleanup", function


def test_resources_that_need_a_workteam_exist_only_with_one():
    for logical_id in ("LabelingRole", "ReviewExecutionRole", "ReviewTaskUi"):
        assert RESOURCES[logical_id]["Condition"] == "HasWorkteam", logical_id
    outputs = TEMPLATE["Outputs"]
    assert {"DataBucketName", "StateTableName", "FlowDefinitionArn", "WorkerPortalUrl"} <= set(outputs)
    assert outputs["WorkerPortalUrl"]["Value"] == {"Fn::GetAtt": ["FlowDefinition", "WorkerPortalUrl"]}
    assert outputs["FlowDefinitionArn"]["Condition"] == "HasWorkteam"


def test_the_template_needs_no_file_outside_the_repository():
    for function in STACK.functions().values():
        assert not Path(function["Properties"]["CodeUri"]).is_absolute()


def test_the_default_review_budget_fills_one_retrain_batch_per_detection():
    # A budget of 0 is "no limit": every uncertain document and none of the others, so the documents the
    # model finds nothing in would never be offered. The default must be a budget, one retrain batch.
    parameters = TEMPLATE["Parameters"]
    assert int(parameters["ReviewBudget"]["Default"]) == int(parameters["RetrainBatchSize"]["Default"]) > 0


# --- detection cap (issue 13, part 3) ----------------------------------------------------------------------


def test_the_detect_stage_and_only_it_gets_the_detection_cap():
    for function in STACK.functions():
        environment = STACK.function_environment(function)
        if function == "DetectFunction":
            cap = int(TEMPLATE["Parameters"]["DetectionDocumentsPerRound"]["Default"])
            assert load_settings(environment).detection_documents_per_round == cap > 0
        else:
            assert "DETECTION_DOCUMENTS_PER_ROUND" not in environment, function


def test_the_detection_cap_stays_within_what_one_comprehend_job_reads():
    assert int(TEMPLATE["Parameters"]["DetectionDocumentsPerRound"]["MaxValue"]) == MAX_DETECTION_LINES
    with pytest.raises(SettingsError, match="DETECTION_DOCUMENTS_PER_ROUND"):
        load_settings({**STACK.function_environment("DetectFunction"),
                       "DETECTION_DOCUMENTS_PER_ROUND": str(MAX_DETECTION_LINES + 1)})


# --- issue 14 part 3: several reviewers per document (begin) ---


def test_reviewers_per_document_is_the_flow_definition_s_task_count_within_the_custom_resource_s_bounds():
    parameter = TEMPLATE["Parameters"]["ReviewersPerDocument"]
    props = Stack.load({"WorkteamArn": WORKTEAM, "ReviewersPerDocument": "3"}).resolve(
        RESOURCES["FlowDefinition"]["Properties"])

    assert custom_resources.FlowDefinitionProperties.model_validate(props).task_count == 3
    bounds = custom_resources.FlowDefinitionProperties.model_fields["task_count"].metadata
    assert (int(parameter["Default"]), int(parameter["MinValue"]), int(parameter["MaxValue"])) == (
        1, next(b.ge for b in bounds if hasattr(b, "ge")), next(b.le for b in bounds if hasattr(b, "le")))


# --- issue 14 part 3 (end) ---
