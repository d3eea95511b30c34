"""Stage 2 — convert: a Ground Truth labeling job completed → its labels in the gold set, and a
training snapshot when no training is in flight."""

from nerloop import coldstart  # first: no garbage collection while the modules below load

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from nerloop.aws import Aws
from nerloop.event_models.labeling import LabelingJobStateChange
from nerloop.idempotency import bind_lambda_context
from nerloop.observability import logger, metrics, tracer
from nerloop.settings import get_settings
from nerloop.stages.convert import convert_labeling_job

coldstart.loaded()
settings = get_settings()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=LabelingJobStateChange)
def lambda_handler(event: LabelingJobStateChange, context: LambdaContext) -> dict[str, Any]:
    bind_lambda_context(context)
    return convert_labeling_job(event.job_arn, Aws(settings.state_table), settings,
                                status=event.detail.LabelingJobStatus)
