"""One module per stage: what each Lambda function does, below its thin handler."""
