"""counter.Counter (echoes each command, control answers the count) with port-level locking."""
import pybridge
from counter import Counter


class KeepsPortOrder(Counter):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
