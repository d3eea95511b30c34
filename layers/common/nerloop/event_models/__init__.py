"""The parser models of the events the functions receive, one module per event source (see
AWS-FACTS.md), so that a handler imports only the models of its own events.

Cold start: pydantic spends about a millisecond creating each model class, and more building its
validator; a handler that imported every model paid for all of them (~50 ms, a sixth of `import
boto3`), now it pays for its own two to five. nerloop.event_catalog gathers them all and tells which model
an event is, for the local mode and the tests.
"""
