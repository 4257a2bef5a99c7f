"""The tools (layer 5): the pybridge command and what its subcommands run."""
