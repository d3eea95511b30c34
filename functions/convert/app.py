"""Stage 2 — convert: a Ground Truth labeling job completed → its labels in the gold set, and a
training snapshot when no training is in flight; a conversion that ran short of time goes on."""

from nerloop import coldstart  # first: no garbage collection while the modules below load

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from nerloop.aws import Aws
from nerloop.deadline import Deadline
from nerloop.event_models.continuation import StageContinued
from nerloop.event_models.labeling import ConvertTrigger, LabelingJobStateChange
from nerloop.idempotency import bind_lambda_context
from nerloop.observability import logger, metrics, tracer
from nerloop.settings import get_settings
from nerloop.stages.convert import continue_conversion, convert_labeling_job

coldstart.loaded()
settings = get_settings()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=ConvertTrigger)
def lambda_handler(event: LabelingJobStateChange | StageContinued, context: LambdaContext) -> dict[str, Any]:
    bind_lambda_context(context)
    deadline = Deadline.of(context)
    if isinstance(event, StageContinued):
        return continue_conversion(event.detail.key, event.detail.sequence, event.detail.checkpoint,
                                   Aws(settings.state_table), settings, deadline=deadline).to_dict()
    return convert_labeling_job(event.job_arn, Aws(settings.state_table), settings,
                                status=event.detail.LabelingJobStatus, deadline=deadline).to_dict()
