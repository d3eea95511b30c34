"""Stage 6 — route: detection output.tar.gz created in S3 -> human loops for uncertain documents; a
routing that ran short of time goes on."""

from nerloop import coldstart  # first: no garbage collection while the modules below load

# isort: split
from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from nerloop.aws import Aws
from nerloop.deadline import Deadline
from nerloop.event_models.continuation import StageContinued
from nerloop.event_models.s3 import S3ObjectCreated
from nerloop.idempotency import bind_lambda_context
from nerloop.observability import logger, metrics, tracer
from nerloop.settings import get_settings
from nerloop.stages.route import continue_routing, route_detection_output

coldstart.loaded()
settings = get_settings()
# A detection output written, or a routing that ran short of time going on (issue 13). Here, not in
# nerloop.event_models.s3: the preprocess and train functions take S3 events without continuations.
RouteTrigger = Annotated[S3ObjectCreated | StageContinued, Field(discriminator="detail_type")]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=RouteTrigger)
def lambda_handler(event: S3ObjectCreated | StageContinued, context: LambdaContext) -> dict[str, Any]:
    bind_lambda_context(context)
    deadline = Deadline.of(context)
    if isinstance(event, StageContinued):
        return continue_routing(event.detail.key, event.detail.sequence, event.detail.checkpoint,
                                Aws(settings.state_table), settings, deadline=deadline).to_dict()
    obj = event.detail.object
    return route_detection_output(event.detail.bucket.name, obj.key, Aws(settings.state_table),
                                  settings, etag=obj.etag, deadline=deadline).to_dict()
