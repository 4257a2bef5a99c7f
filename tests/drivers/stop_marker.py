"""stop writes a marker file named by the start command, so a test sees it ran."""
import pybridge


class StopMarker(pybridge.Driver):
    def start(self, command):
        self.path = command

    def stop(self):
        with open(self.path, "w") as f:
            f.write("stopped")
