"""stop writes a marker file named by the start command, so a test sees it ran (under
driver-level and port-level locking)."""
import pybridge


class StopMarker(pybridge.Driver):
    def start(self, command):
        self.path = command

    def stop(self):
        with open(self.path, "w") as f:
            f.write("stopped")


class StopMarkerPortLevel(StopMarker):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
