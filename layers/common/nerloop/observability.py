"""The one place that creates Powertools' Logger, Metrics and Tracer; handlers import them."""

from aws_lambda_powertools import Logger, Metrics, Tracer

# The service name comes from POWERTOOLS_SERVICE_NAME (one per function, set in template.yaml).
logger = Logger()
metrics = Metrics(namespace="nerloop")
tracer = Tracer()
