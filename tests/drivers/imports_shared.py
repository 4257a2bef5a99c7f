"""Imports modules by name for its caller: call(0, Name) is the module's MARK (the
python_path test modules set one; standard ones have none: undefined), or the exception's
class name if the import fails. Opened from the shared python_path (app env)."""
import importlib

import pybridge


class ImportsShared(pybridge.Driver):
    def call(self, command, name):
        try:
            mod = importlib.import_module(name.decode())
        except ImportError as e:
            return type(e).__name__.encode()
        return getattr(mod, "MARK", None)
