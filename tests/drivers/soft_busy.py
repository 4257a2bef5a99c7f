"""The busy driver with ERL_DRV_FLAG_SOFT_BUSY: as a named driver, [force] goes through."""
import pybridge
from busy import Busy


class SoftBusy(Busy):
    flags = pybridge.ERL_DRV_FLAG_SOFT_BUSY
