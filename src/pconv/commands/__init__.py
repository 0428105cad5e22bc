"""One module per ``pconv`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``."""
