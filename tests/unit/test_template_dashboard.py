"""The stack's CloudWatch dashboard: a valid dashboard body with every metric the code publishes (under
the namespace and `service` dimension Powertools publishes it with), each stage's dead-letter queue and
every alarm; its console address among the outputs."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.template import REPO

LAYER = REPO / "layers/common/nerloop"
WIDGET_TYPES = {"metric", "text", "alarm", "log", "explorer"}  # the body's widget types used or allowed here


def published_metrics() -> dict[str, set[str]]:
    """Every `metrics.add_metric(name=...)` in the layer: metric name → the modules that add it."""
    found: dict[str, set[str]] = {}
    for path in LAYER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_metric"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "metrics"):
                name = next(keyword.value for keyword in node.keywords if keyword.arg == "name")
                assert isinstance(name, ast.Constant), f"{path}: a metric name that is not a literal"
                found.setdefault(str(name.value), set()).add(path.relative_to(LAYER).as_posix())
    return found


@pytest.fixture(scope="module")
def body(stack: Stack) -> dict[str, Any]:
    text = stack.resolve(stack.resource("Dashboard")["Properties"]["DashboardBody"])
    return json.loads(text)  # type: ignore[no-any-return]


def metric_rows(body: dict[str, Any]) -> list[list[Any]]:
    return [row for widget in body["widgets"] if widget["type"] == "metric" for row in widget["properties"]["metrics"]]


def namespace(stack: Stack) -> str:
    return str(stack.template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"])


def test_the_finder_finds_the_metrics_the_stages_add() -> None:
    metrics = published_metrics()
    assert metrics["ReviewsMerged"] == {"stages/merge.py"}
    assert metrics["DetectionJobsStarted"] == {"detection_jobs.py"}


def test_the_body_is_a_dashboard(body: dict[str, Any]) -> None:
    assert isinstance(body["widgets"], list) and 0 < len(body["widgets"]) <= 500
    for widget in body["widgets"]:
        assert widget["type"] in WIDGET_TYPES
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24  # the grid is 24 units wide
        if widget["type"] == "metric":
            assert widget["properties"]["region"] and widget["properties"]["metrics"]


def test_every_metric_the_code_publishes_is_on_the_dashboard(stack: Stack, body: dict[str, Any]) -> None:
    on_dashboard = {(row[0], row[1]) for row in metric_rows(body)}
    missing = [name for name in published_metrics() if (namespace(stack), name) not in on_dashboard]
    assert missing == []


def test_each_metric_is_shown_with_the_service_that_publishes_it(stack: Stack, body: dict[str, Any]) -> None:
    # Powertools adds the function's POWERTOOLS_SERVICE_NAME as the `service` dimension
    services = {stack.function_environment(name)["POWERTOOLS_SERVICE_NAME"] for name in stack.functions()}
    metrics = published_metrics()
    ours = [row for row in metric_rows(body) if row[0] == namespace(stack)]
    for row in ours:
        dimensions = dict(zip(row[2:-1:2], row[3:-1:2], strict=True)) if isinstance(row[-1], dict) \
            else dict(zip(row[2::2], row[3::2], strict=True))
        assert set(dimensions) == {"service"} and dimensions["service"] in services, row
        modules = metrics[row[1]]
        stage_modules = {module for module in modules if module.startswith("stages/")}
        if stage_modules == modules:  # a stage's own metric: published by that stage's function only
            assert {f"nerloop-{Path(module).stem}" for module in modules} == {dimensions["service"]}, row


def test_every_dead_letter_queue_and_alarm_is_on_the_dashboard(stack: Stack, body: dict[str, Any]) -> None:
    resources = stack.template["Resources"]
    queues = {stack.names[f"{name}.QueueName"] for name, res in resources.items() if res["Type"] == "AWS::SQS::Queue"}
    shown = {row[3] for row in metric_rows(body) if row[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                                                "QueueName"]}
    assert shown == queues
    alarms = {stack.names[f"{name}.Arn"] for name, res in resources.items() if res["Type"] == "AWS::CloudWatch::Alarm"}
    (alarm_widget,) = [widget for widget in body["widgets"] if widget["type"] == "alarm"]
    assert set(alarm_widget["properties"]["alarms"]) == alarms


def test_the_dashboard_address_is_an_output(stack: Stack) -> None:
    url = stack.resolve(stack.template["Outputs"]["DashboardUrl"]["Value"])
    assert url.endswith(f"#dashboards/dashboard/{stack.physical_name('Dashboard')}")
    assert url.startswith(f"https://{stack.names['AWS::Region']}.console.aws.amazon.com/cloudwatch/")
