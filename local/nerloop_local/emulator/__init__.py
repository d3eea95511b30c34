"""The emulated AWS account: template.yaml's stack deployed in one process (moto plus the stand-ins).

runtime.py      LocalRuntime, the façade the commands, reports, bench and tests use
deployment.py   the template's resources, custom resources, and the functions' rules and queues
invocation.py   one handler invocation: its environment, a LambdaContext, handler overrides
event_pump.py   schedules, delivery, Lambda's retries, duplicate deliveries; the delivery log
dead_letters.py Lambda's invocation records on the failure destinations, and redrive
queues.py       each function's wiring and reading its SQS queues
labeling.py     a Ground Truth labeling job run from a finished manifest
stack.py, template.py   template.yaml loaded and resolved for given parameters
workspace.py    the workspace folder: what is saved between runs and how
isolation.py    the one account and region, fake credentials, the network guard
atomic.py, scaling.py   moto's DynamoDB made atomic and fast at scale
faults.py       fault injection for `nerloop chaos`
"""
