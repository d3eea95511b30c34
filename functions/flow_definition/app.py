"""Custom resources — the A2I flow definition and the recognizer's cleanup: CloudFormation request ->
create / keep / delete -> the response PUT to CloudFormation's ResponseURL."""

from nerloop import coldstart  # first: no garbage collection while the modules below load

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from nerloop.aws import Aws
from nerloop.custom_resources import handle_request
from nerloop.observability import logger, tracer

coldstart.loaded()


# No settings and no event_parser here: a request must be answered even when it is malformed or the
# environment is wrong, or CloudFormation waits an hour. handle_request parses and always answers.
@logger.inject_lambda_context(correlation_id_path="RequestId")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_request(event, context, Aws(table_name=""))
