"""nerloop: the shared library of the human-in-the-loop NER loop.

Every Lambda function, the local mode and the tests use this package. It is laid out so that
`sam build` puts it at /opt/python/nerloop in the Lambda layer.
"""
