"""Pool tests: call(0, T) answers (worker pid, T); call(1, (Ms, T)) sleeps Ms ms, then
answers the same for (Ms, T); call(2, _) raises ValueError; control echoes. Port-level
locking, so that the members one worker serves answer at once."""
import os
import time

import pybridge


class AnswersWithItsPid(pybridge.Driver):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING

    def call(self, command, term):
        if command == 1:
            time.sleep(term[0] / 1000)
        if command == 2:
            raise ValueError("refused by the member")
        return (os.getpid(), term)

    def control(self, command, data):
        return data
