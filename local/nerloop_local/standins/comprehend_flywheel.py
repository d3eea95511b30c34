"""Amazon Comprehend flywheels, emulated over the recognizer stand-in (standins.comprehend).

Answers (service "comprehend"): CreateFlywheel, DescribeFlywheel, ListFlywheels, UpdateFlywheel,
DeleteFlywheel, CreateDataset, DescribeDataset, ListDatasets, StartFlywheelIteration,
DescribeFlywheelIteration. StartEntitiesDetectionJob with FlywheelArn runs the flywheel's active model
(ComprehendStandIn asks `active_model`).

As the developer guide describes flywheels ("Flywheel overview", "Configuring datasets", "Flywheel
iterations", "Using flywheels for analysis") and botocore's model names their fields and statuses:
- a flywheel for a new model (TaskConfig, ModelType CUSTOM_ENTITY_RECOGNIZER) starts with no model;
  it is ACTIVE at once here (nobody waits in local mode);
- a dataset (TRAIN or TEST, COMPREHEND_CSV) is CREATING, then COMPLETED once its files read as
  Comprehend reads training data (FAILED with the reason otherwise);
- an iteration uses the datasets that no earlier iteration used ("uses any new datasets to train a new
  model version"): it trains a model version with the local CRF recognizer on the new TRAIN dataset,
  tested on the new TEST dataset (TRAINING), then evaluates the active model on the same test data
  (EVALUATING) and is COMPLETED with TrainedModelArn, TrainedModelMetrics, EvaluatedModelArn and
  EvaluatedModelMetrics; a training that fails makes it FAILED with the model's Message;
- UpdateFlywheel(ActiveModelArn) sets the model jobs started with the flywheel's ARN use.
Not documented, chosen here: the trained model's recognizer is named after the flywheel and versioned
by the iteration id; the FlywheelModelEvaluationMetrics are on the recognizer's 0-100 scale; an
iteration with no new TRAIN dataset, or more than one, is refused (InvalidRequestException).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from nerloop_local.recognizer.crf import evaluate
from nerloop_local.standins.base import (
    StandInContext,
    StandInError,
    StandInService,
    drop_none,
    dump_record,
    load_record,
    paginate,
    utcnow,
)
from nerloop_local.standins.comprehend import SERVICE, ComprehendStandIn
from nerloop_local.standins.comprehend_training_data import TrainingDataError, read_set, read_training_data

TRAINED = ("TRAINED", "TRAINED_WITH_WARNING")


@dataclass
class Flywheel:
    arn: str
    name: str
    role: str
    data_lake: str
    task_config: dict[str, Any]
    creation_time: datetime
    status: str = "ACTIVE"
    active_model_arn: str | None = None
    latest_iteration: str | None = None
    token: str | None = None

    def properties(self) -> dict[str, Any]:
        return drop_none({"FlywheelArn": self.arn, "ActiveModelArn": self.active_model_arn,
                          "DataAccessRoleArn": self.role, "TaskConfig": self.task_config,
                          "DataLakeS3Uri": self.data_lake, "Status": self.status,
                          "ModelType": "CUSTOM_ENTITY_RECOGNIZER", "CreationTime": self.creation_time,
                          "LatestFlywheelIteration": self.latest_iteration})


@dataclass
class Dataset:
    arn: str
    name: str
    kind: str
    flywheel_arn: str
    input_config: dict[str, Any]
    creation_time: datetime
    status: str = "CREATING"
    message: str | None = None
    documents: int | None = None
    end_time: datetime | None = None
    used_by: str | None = None  # the iteration that used it
    token: str | None = None

    def properties(self) -> dict[str, Any]:
        return drop_none({"DatasetArn": self.arn, "DatasetName": self.name, "DatasetType": self.kind,
                          "Status": self.status, "Message": self.message, "NumberOfDocuments": self.documents,
                          "CreationTime": self.creation_time, "EndTime": self.end_time})


@dataclass
class Iteration:
    flywheel_arn: str
    iteration_id: str
    creation_time: datetime
    status: str = "TRAINING"
    message: str | None = None
    trained_model_arn: str | None = None
    trained_metrics: dict[str, float] | None = None
    evaluated_model_arn: str | None = None
    evaluated_metrics: dict[str, float] | None = None
    test_config: dict[str, Any] = field(default_factory=dict)
    end_time: datetime | None = None
    token: str | None = None

    def properties(self) -> dict[str, Any]:
        return drop_none({"FlywheelArn": self.flywheel_arn, "FlywheelIterationId": self.iteration_id,
                          "CreationTime": self.creation_time, "EndTime": self.end_time, "Status": self.status,
                          "Message": self.message, "TrainedModelArn": self.trained_model_arn,
                          "TrainedModelMetrics": self.trained_metrics,
                          "EvaluatedModelArn": self.evaluated_model_arn,
                          "EvaluatedModelMetrics": self.evaluated_metrics})


class FlywheelsStandIn(StandInService):
    """Flywheels whose iterations train with the recognizer stand-in."""

    operations: ClassVar[dict[tuple[str, str], str]] = {
        (SERVICE, "CreateFlywheel"): "create_flywheel",
        (SERVICE, "DescribeFlywheel"): "describe_flywheel",
        (SERVICE, "ListFlywheels"): "list_flywheels",
        (SERVICE, "UpdateFlywheel"): "update_flywheel",
        (SERVICE, "DeleteFlywheel"): "delete_flywheel",
        (SERVICE, "CreateDataset"): "create_dataset",
        (SERVICE, "DescribeDataset"): "describe_dataset",
        (SERVICE, "ListDatasets"): "list_datasets",
        (SERVICE, "StartFlywheelIteration"): "start_flywheel_iteration",
        (SERVICE, "DescribeFlywheelIteration"): "describe_flywheel_iteration",
    }

    def __init__(self, context: StandInContext, comprehend: ComprehendStandIn) -> None:
        super().__init__(context)
        self.comprehend = comprehend
        comprehend.active_model = self.active_model
        self.flywheels: dict[str, Flywheel] = {}
        self.datasets: dict[str, Dataset] = {}
        self.iterations: dict[tuple[str, str], Iteration] = {}

    # --- flywheels ------------------------------------------------------------------------------

    def _flywheel(self, arn: str) -> Flywheel:
        if arn not in self.flywheels:
            raise StandInError("ResourceNotFoundException", f"Could not find specified resource: {arn}")
        return self.flywheels[arn]

    def create_flywheel(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["FlywheelName"]
        arn = f"arn:aws:comprehend:{self.context.region}:{self.context.account}:flywheel/{name}"
        existing = self.flywheels.get(arn)
        if existing is not None:
            if existing.token and existing.token == params.get("ClientRequestToken"):
                return {"FlywheelArn": arn}
            raise StandInError("ResourceInUseException", f"flywheel {name} already exists")
        if params.get("ActiveModelArn") is None and (not params.get("TaskConfig") or not params.get("ModelType")):
            raise StandInError("InvalidRequestException", "a flywheel for a new model needs TaskConfig and ModelType")
        self.flywheels[arn] = Flywheel(arn, name, params["DataAccessRoleArn"], params["DataLakeS3Uri"],
                                       params.get("TaskConfig") or {}, utcnow(),
                                       active_model_arn=params.get("ActiveModelArn"),
                                       token=params.get("ClientRequestToken"))
        self.changes += 1
        return drop_none({"FlywheelArn": arn, "ActiveModelArn": params.get("ActiveModelArn")})

    def describe_flywheel(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"FlywheelProperties": self._flywheel(params["FlywheelArn"]).properties()}

    def list_flywheels(self, params: dict[str, Any]) -> dict[str, Any]:
        page, token = paginate(sorted(self.flywheels.values(), key=lambda f: f.name), params)
        return drop_none({"FlywheelSummaryList": [f.properties() for f in page], "NextToken": token})

    def update_flywheel(self, params: dict[str, Any]) -> dict[str, Any]:
        flywheel = self._flywheel(params["FlywheelArn"])
        model = params.get("ActiveModelArn")
        if model is not None:
            recognizer = self.comprehend.recognizers.get(model)
            if recognizer is None or recognizer.status not in TRAINED:
                raise StandInError("InvalidRequestException", f"{model} is not a trained model version")
            flywheel.active_model_arn = model
            self.changes += 1
        return {"FlywheelProperties": flywheel.properties()}

    def delete_flywheel(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["FlywheelArn"]
        self._flywheel(arn)
        if any(i.flywheel_arn == arn and i.status in ("TRAINING", "EVALUATING") for i in self.iterations.values()) \
                or any(d.flywheel_arn == arn and d.status == "CREATING" for d in self.datasets.values()):
            raise StandInError("ResourceInUseException", "the flywheel is running an iteration or creating a dataset")
        del self.flywheels[arn]
        self.changes += 1
        return {}

    def active_model(self, flywheel_arn: str) -> str:
        """The model a job started with this flywheel's ARN runs."""
        model = self._flywheel(flywheel_arn).active_model_arn
        if not model:
            raise StandInError("ResourceUnavailableException", f"{flywheel_arn} has no active model version")
        return model

    # --- datasets -------------------------------------------------------------------------------

    def create_dataset(self, params: dict[str, Any]) -> dict[str, Any]:
        flywheel = self._flywheel(params["FlywheelArn"])
        name, kind = params["DatasetName"], params.get("DatasetType", "TRAIN")
        arn = f"{flywheel.arn}/dataset/{name}"
        existing = self.datasets.get(arn)
        if existing is not None:
            if existing.token and existing.token == params.get("ClientRequestToken"):
                return {"DatasetArn": arn}
            raise StandInError("ResourceInUseException", f"dataset {name} already exists")
        config = params["InputDataConfig"]
        if config.get("DataFormat", "COMPREHEND_CSV") != "COMPREHEND_CSV" or \
                "EntityRecognizerInputDataConfig" not in config:
            raise StandInError("InvalidRequestException", "the local stand-in takes COMPREHEND_CSV entity datasets")
        self.datasets[arn] = Dataset(arn, name, kind, flywheel.arn, config["EntityRecognizerInputDataConfig"],
                                     utcnow(), token=params.get("ClientRequestToken"))
        self.changes += 1
        return {"DatasetArn": arn}

    def _dataset(self, arn: str) -> Dataset:
        if arn not in self.datasets:
            raise StandInError("ResourceNotFoundException", f"Could not find specified resource: {arn}")
        return self.datasets[arn]

    def describe_dataset(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"DatasetProperties": self._dataset(params["DatasetArn"]).properties()}

    def list_datasets(self, params: dict[str, Any]) -> dict[str, Any]:
        found = sorted((d for d in self.datasets.values() if d.flywheel_arn == params.get("FlywheelArn")),
                       key=lambda d: (d.creation_time, d.name))
        page, token = paginate(found, params)
        return drop_none({"DatasetPropertiesList": [d.properties() for d in page], "NextToken": token})

    # --- iterations -----------------------------------------------------------------------------

    def start_flywheel_iteration(self, params: dict[str, Any]) -> dict[str, Any]:
        flywheel = self._flywheel(params["FlywheelArn"])
        token = params.get("ClientRequestToken")
        for iteration in self.iterations.values():
            if token and iteration.token == token and iteration.flywheel_arn == flywheel.arn:
                return {"FlywheelArn": flywheel.arn, "FlywheelIterationId": iteration.iteration_id}
        if any(i.flywheel_arn == flywheel.arn and i.status in ("TRAINING", "EVALUATING")
               for i in self.iterations.values()):
            raise StandInError("ResourceInUseException", "an iteration of this flywheel is running")
        new = [d for d in self.datasets.values()
               if d.flywheel_arn == flywheel.arn and d.status == "COMPLETED" and d.used_by is None]
        train = [d for d in new if d.kind == "TRAIN"]
        test = [d for d in new if d.kind == "TEST"]
        if len(train) != 1 or len(test) > 1:
            raise StandInError("InvalidRequestException", f"the local stand-in trains an iteration on one new TRAIN "
                            f"dataset and at most one TEST dataset ({len(train)} and {len(test)} are new)")
        iteration_id = self._iteration_id(flywheel.arn)
        documents = dict(train[0].input_config["Documents"])
        annotations = dict(train[0].input_config["Annotations"])
        if test:
            documents["TestS3Uri"] = test[0].input_config["Documents"]["S3Uri"]
            annotations["TestS3Uri"] = test[0].input_config["Annotations"]["S3Uri"]
        types = flywheel.task_config["EntityRecognitionConfig"]["EntityTypes"]
        model = self.comprehend.create_entity_recognizer({
            "RecognizerName": flywheel.name, "VersionName": iteration_id, "DataAccessRoleArn": flywheel.role,
            "LanguageCode": flywheel.task_config.get("LanguageCode", "en"),
            "InputDataConfig": {"DataFormat": "COMPREHEND_CSV", "EntityTypes": types,
                                "Documents": documents, "Annotations": annotations}})["EntityRecognizerArn"]
        for dataset in new:
            dataset.used_by = iteration_id
        iteration = Iteration(flywheel.arn, iteration_id, utcnow(), trained_model_arn=model,
                              evaluated_model_arn=flywheel.active_model_arn,
                              test_config={"Documents": documents, "Annotations": annotations,
                                           "EntityTypes": types}, token=token)
        self.iterations[(flywheel.arn, iteration_id)] = iteration
        flywheel.latest_iteration = iteration_id
        self.changes += 1
        return {"FlywheelArn": flywheel.arn, "FlywheelIterationId": iteration_id}

    def _iteration_id(self, flywheel_arn: str) -> str:
        """FlywheelIterationId's pattern, [0-9]{8}T[0-9]{6}Z; a second later when that one is taken."""
        when = utcnow()
        while (flywheel_arn, when.strftime("%Y%m%dT%H%M%SZ")) in self.iterations:
            when += timedelta(seconds=1)
        return when.strftime("%Y%m%dT%H%M%SZ")

    def describe_flywheel_iteration(self, params: dict[str, Any]) -> dict[str, Any]:
        iteration = self.iterations.get((params["FlywheelArn"], params["FlywheelIterationId"]))
        if iteration is None:
            raise StandInError("ResourceNotFoundException", f"Could not find iteration {params['FlywheelIterationId']}")
        return {"FlywheelIterationProperties": iteration.properties()}

    # --- the clock ------------------------------------------------------------------------------

    def busy(self) -> bool:
        return (any(d.status == "CREATING" for d in self.datasets.values())
                or any(i.status in ("TRAINING", "EVALUATING") for i in self.iterations.values()))

    def tick(self) -> None:
        for dataset in self.datasets.values():
            if dataset.status == "CREATING":
                self._ingest(dataset)
                self.changes += 1
        for iteration in self.iterations.values():
            if iteration.status in ("TRAINING", "EVALUATING"):
                self._advance(iteration)

    def _ingest(self, dataset: Dataset) -> None:
        flywheel = self.flywheels[dataset.flywheel_arn]
        types = [item["Type"] for item in flywheel.task_config["EntityRecognitionConfig"]["EntityTypes"]]
        config = {"Documents": dataset.input_config["Documents"], "Annotations": dataset.input_config["Annotations"]}
        try:
            if dataset.kind == "TRAIN":
                documents, _ = read_training_data(self.context, config, types)
            else:
                documents = read_set(self.context, config["Documents"]["S3Uri"], config["Annotations"]["S3Uri"],
                                      types)
        except TrainingDataError as exc:
            dataset.status, dataset.message = "FAILED", str(exc)
        else:
            dataset.status, dataset.documents = "COMPLETED", len(documents)
        dataset.end_time = utcnow()

    def _advance(self, iteration: Iteration) -> None:
        model = self.comprehend.recognizers.get(iteration.trained_model_arn or "")
        if iteration.status == "TRAINING":
            if model is None or model.status in ("IN_ERROR", "STOPPED"):
                iteration.status = "FAILED"
                iteration.message = model.message if model else "the trained model is gone"
                iteration.end_time = utcnow()
            elif model.status in TRAINED:
                iteration.status = "EVALUATING"
                iteration.trained_metrics = _averages((model.metadata or {}).get("EvaluationMetrics") or {})
            else:
                return
        else:  # EVALUATING: the active model on the same test data
            if iteration.evaluated_model_arn:
                iteration.evaluated_metrics = self._evaluate(iteration.evaluated_model_arn, iteration.test_config)
            iteration.status = "COMPLETED"
            iteration.end_time = utcnow()
        self.changes += 1

    def _evaluate(self, model_arn: str, config: dict[str, Any]) -> dict[str, float] | None:
        types = [item["Type"] for item in config["EntityTypes"]]
        if not config["Documents"].get("TestS3Uri"):
            return None  # no TEST dataset: Comprehend's own hold-out differs per model
        _, test = read_training_data(self.context, config, types)
        model = self.comprehend.model(model_arn)
        metadata = evaluate(model, test or []).to_comprehend_metadata(model.trained_documents, model.train_mentions)
        return _averages(metadata["EvaluationMetrics"])

    # --- saved state ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"flywheels": [dump_record(f) for f in self.flywheels.values()],
                "datasets": [dump_record(d) for d in self.datasets.values()],
                "iterations": [dump_record(i) for i in self.iterations.values()]}

    def restore(self, data: dict[str, Any]) -> None:
        self.flywheels = {item["arn"]: load_record(Flywheel, item) for item in data.get("flywheels", [])}
        self.datasets = {item["arn"]: load_record(Dataset, item) for item in data.get("datasets", [])}
        self.iterations = {(item["flywheel_arn"], item["iteration_id"]): load_record(Iteration, item)
                           for item in data.get("iterations", [])}


def _averages(metrics: dict[str, Any]) -> dict[str, float]:
    """FlywheelModelEvaluationMetrics from a recognizer's EvaluationMetrics."""
    return {name: float(metrics[source]) for name, source in
            (("AverageF1Score", "F1Score"), ("AveragePrecision", "Precision"), ("AverageRecall", "Recall"))
            if metrics.get(source) is not None}
