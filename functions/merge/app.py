"""Stage 7 — merge: A2I human loop finished -> reviewed spans into the gold set, retrain when due."""

from nerloop import coldstart  # first: no garbage collection while the modules below load

# isort: split
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from nerloop.aws import Aws
from nerloop.event_models.human_loop import HumanLoopStatusChange
from nerloop.idempotency import bind_lambda_context
from nerloop.observability import logger, metrics, tracer
from nerloop.settings import get_settings
from nerloop.stages.merge import merge_human_loop

coldstart.loaded()
settings = get_settings()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=HumanLoopStatusChange)
def lambda_handler(event: HumanLoopStatusChange, context: LambdaContext) -> dict[str, Any]:
    bind_lambda_context(context)
    return merge_human_loop(event.detail, Aws(settings.state_table), settings).to_dict()
