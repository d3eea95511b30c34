"""nerloop's local mode: emulated AWS (moto plus stand-ins for what moto lacks), the local CRF
recognizer and the `nerloop` command. Not part of the Lambda layer."""
