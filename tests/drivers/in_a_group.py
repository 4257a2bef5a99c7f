"""A driver whose class names a worker group the test node does not configure."""
import pybridge


class Nowhere(pybridge.Driver):
    worker_group = "nowhere"
