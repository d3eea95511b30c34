"""One module per `nerloop` subcommand, and the pieces only commands share; cli.py assembles them."""
