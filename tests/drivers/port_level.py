"""Any test driver again, with port-level locking: the class port_level:mod__Class is
mod:Class with ERL_DRV_FLAG_USE_PORT_LOCKING added to its flags (made when first asked
for), so that a suite can run its tests under both lockings."""
import importlib

import pybridge


def __getattr__(name):
    mod, _, cls = name.partition("__")
    base = getattr(importlib.import_module(mod), cls)
    made = type(name, (base,), {"flags": base.flags | pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING,
                                "__module__": __name__})
    globals()[name] = made
    return made
