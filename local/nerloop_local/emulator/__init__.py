"""The emulated AWS account: template.yaml's stack deployed in one process (moto plus the stand-ins), its
invocations, the event pump, isolation from real AWS, persistence between runs and fault injection."""
