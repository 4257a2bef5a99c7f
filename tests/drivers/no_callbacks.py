"""A driver with no callbacks at all: like a C driver_entry full of NULLs."""
import pybridge


class NoCallbacks(pybridge.Driver):
    pass
