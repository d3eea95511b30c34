"""Stage 5 — detect: a recognizer version's training ended → if trained, through the gate, start detection;
the gate's evaluation job ended → decide, start detection; new documents added to the pool → detect them
with the active version."""

from nerloop import coldstart  # first: no garbage collection while the modules below load

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from nerloop.aws import Aws
from nerloop.event_models.loop import (
    DetectionJobStatusChange,
    DetectTrigger,
    DocumentsAdded,
    RecognizerStatusChange,
)
from nerloop.idempotency import bind_lambda_context
from nerloop.observability import logger, metrics, tracer
from nerloop.settings import get_settings
from nerloop.stages.detect import detect_batch, handle_evaluation_status, handle_recognizer_status

coldstart.loaded()
settings = get_settings()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=DetectTrigger)
def lambda_handler(event: RecognizerStatusChange | DocumentsAdded | DetectionJobStatusChange,
                   context: LambdaContext) -> dict[str, Any]:
    bind_lambda_context(context)
    if isinstance(event, DocumentsAdded):
        return detect_batch(event.detail, Aws(settings.state_table), settings).to_dict()
    if isinstance(event, DetectionJobStatusChange):  # the gate's evaluation job ended
        return handle_evaluation_status(event.detail, Aws(settings.state_table), settings).to_dict()
    return handle_recognizer_status(event.detail, Aws(settings.state_table), settings).to_dict()
