"""start raises: open_port must fail with badarg, pybridge:open with the Python error."""
import pybridge


class StartFails(pybridge.Driver):
    def start(self, command):
        raise ValueError("start refused: " + command)


class NotADriver:
    pass
