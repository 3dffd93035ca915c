"""`testbed` subcommands, one module each."""
