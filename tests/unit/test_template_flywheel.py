"""template.yaml's TrainingMode (issue 15 part 2): the flywheel and its grants exist only in Flywheel mode,
and each function is granted exactly the flywheel operations its code calls."""

from __future__ import annotations

from typing import Any

from nerloop import constants
from nerloop_local.emulator.stack import Stack

STACK = Stack.load()
RESOURCES = STACK.template["Resources"]
NO_VALUE = {"Ref": "AWS::NoValue"}

# What each function calls in flywheel mode (nerloop.flywheel, nerloop.flywheel_resource).
FLYWHEEL_ACTIONS = {
    "TrainFunction": {"comprehend:CreateDataset"},
    "WatchFunction": {"comprehend:DescribeDataset", "comprehend:StartFlywheelIteration",
                      "comprehend:DescribeFlywheelIteration", "comprehend:DescribeEntityRecognizer",
                      "comprehend:StartEntitiesDetectionJob"},
    "DetectFunction": {"comprehend:UpdateFlywheel", "comprehend:DescribeEntityRecognizer",
                       "comprehend:StartEntitiesDetectionJob"},
    "FlowDefinitionFunction": {"comprehend:CreateFlywheel", "comprehend:DescribeFlywheel",
                               "comprehend:DeleteFlywheel", "iam:PassRole"},
}
FLYWHEEL_OPERATIONS = {"comprehend:CreateDataset", "comprehend:DescribeDataset", "comprehend:StartFlywheelIteration",
                       "comprehend:DescribeFlywheelIteration", "comprehend:UpdateFlywheel",
                       "comprehend:CreateFlywheel", "comprehend:DescribeFlywheel", "comprehend:DeleteFlywheel"}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def flywheel_blocks(policies: list[Any]) -> list[dict[str, Any]]:
    """The statements of the policies under `!If [FlywheelMode, ..., AWS::NoValue]`."""
    found = []
    for policy in policies:
        if isinstance(policy, dict) and "Fn::If" in policy:
            condition, when_true, when_false = policy["Fn::If"]
            if condition == "FlywheelMode":
                assert when_false == NO_VALUE
                document = when_true.get("PolicyDocument", when_true)
                found.extend(as_list(document["Statement"]))
    return found


def other_statements(policies: list[Any]) -> list[dict[str, Any]]:
    found = []
    for policy in policies:
        if isinstance(policy, dict) and "Fn::If" in policy:
            if policy["Fn::If"][0] == "FlywheelMode":
                continue
            policy = policy["Fn::If"][1]
        document = policy.get("PolicyDocument", policy)
        found.extend(as_list(document["Statement"]))
    return found


def test_the_parameter_defaults_to_today_s_recognizer_versions():
    spec = STACK.template["Parameters"]["TrainingMode"]
    assert spec["Default"] == "Recognizer" and spec["AllowedValues"] == ["Recognizer", "Flywheel"]
    assert STACK.template["Conditions"]["FlywheelMode"] == {"Fn::Equals": [{"Ref": "TrainingMode"}, "Flywheel"]}


def test_the_flywheel_exists_only_in_flywheel_mode_with_its_data_lake_in_the_bucket():
    flywheel = RESOURCES["Flywheel"]
    assert flywheel["Condition"] == "FlywheelMode" and flywheel["Type"] == "Custom::Flywheel"
    props = flywheel["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["FlowDefinitionFunction", "Arn"]}
    assert props["DataLakeS3Uri"] == {"Fn::Sub": f"s3://${{DataBucket}}/{constants.FLYWHEEL_DATA_LAKE_PREFIX}"}
    assert props["DataAccessRoleArn"] == {"Fn::GetAtt": ["ComprehendDataAccessRole", "Arn"]}
    env = STACK.template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["FLYWHEEL_ARN"] == {"Fn::If": ["FlywheelMode", {"Fn::GetAtt": ["Flywheel", "Arn"]}, ""]}
    assert env["TRAINING_MODE"] == {"Ref": "TrainingMode"}
    assert not STACK.names["Condition:FlywheelMode"]
    assert Stack.load({"TrainingMode": "Flywheel"}).names["Condition:FlywheelMode"]


def test_each_function_gets_exactly_the_flywheel_operations_it_calls_and_only_in_flywheel_mode():
    for function, resource in STACK.functions().items():
        policies = resource["Properties"].get("Policies", [])
        granted = {action for st in flywheel_blocks(policies) for action in as_list(st["Action"])}
        assert granted == FLYWHEEL_ACTIONS.get(function, set()), function
        elsewhere = {action for st in other_statements(policies) for action in as_list(st["Action"])}
        assert not elsewhere & FLYWHEEL_OPERATIONS, function


def test_flywheel_grants_name_the_stack_s_flywheel_and_pass_only_the_comprehend_role():
    for function in FLYWHEEL_ACTIONS:
        for statement in flywheel_blocks(STACK.functions()[function]["Properties"]["Policies"]):
            for resource in as_list(statement["Resource"]):
                if statement["Action"] == "iam:PassRole":
                    assert resource == {"Fn::GetAtt": ["ComprehendDataAccessRole", "Arn"]}
                    assert statement["Condition"] == {
                        "StringEquals": {"iam:PassedToService": "comprehend.amazonaws.com"}}
                    continue
                text = resource["Fn::Sub"]
                # The flywheel is <RecognizerName>-<hash> (nerloop.flywheel_resource); the models it trains
                # are named by Comprehend, so only those grants name every recognizer.
                assert (":flywheel/${RecognizerName}-*" in text or text.endswith(":entity-recognizer/*")), text


def test_the_comprehend_role_reaches_the_data_lake_only_in_flywheel_mode():
    policies = RESOURCES["ComprehendDataAccessRole"]["Properties"]["Policies"]
    statements = flywheel_blocks(policies)
    resources = [r for st in statements for r in as_list(st["Resource"])]
    assert {"Fn::Sub": f"${{DataBucket.Arn}}/{constants.FLYWHEEL_DATA_LAKE_PREFIX}*"} in resources
    for statement in other_statements(policies):
        for resource in as_list(statement["Resource"]):
            assert constants.FLYWHEEL_DATA_LAKE_PREFIX not in str(resource)
