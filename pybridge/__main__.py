"""``python -m pybridge``: the pybridge command (the node starts workers this way)."""
from ._tools.cli import main

main()
