"""Stage 3 — train: training/<version>/annotations.csv created → CreateEntityRecognizer."""

from nerloop import coldstart  # first: no garbage collection while the modules below load

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from nerloop.aws import Aws
from nerloop.event_models.s3 import S3ObjectCreated
from nerloop.idempotency import bind_lambda_context
from nerloop.observability import logger, metrics, tracer
from nerloop.settings import get_settings
from nerloop.stages.train import start_training

coldstart.loaded()
settings = get_settings()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=S3ObjectCreated)
def lambda_handler(event: S3ObjectCreated, context: LambdaContext) -> dict[str, Any]:
    bind_lambda_context(context)
    obj = event.detail.object
    return start_training(event.detail.bucket.name, obj.key, obj.etag, Aws(settings.state_table), settings).to_dict()
