"""Opcodes, flags and the frame header of the pybridge wire protocol.

docs/PROTOCOL.md is normative; this module mirrors its tables (a test checks that the
C, Erlang and Python tables agree with it). Frames on a port's channel are read by
_wire.reader and written by _wire.writer; the ctl socket's few frames use frame() below.
"""
import struct

PROTOCOL_VERSION = 4

# ---- opcodes: keep equal to docs/PROTOCOL.md ----
CTL_HELLO = 0x01
CTL_NEW_PORT = 0x02
CTL_PID_INFO = 0x03
CTL_LOG = 0x04
CTL_WORKER_EXIT = 0x05
CTL_CLASS_INFO = 0x06
CTL_SHM = 0x07
CTL_HUNG = 0x08
CTL_RELOAD = 0x09
CTL_ERL_CALL = 0x0A
CTL_ERL_RESULT = 0x0B
CTL_PORT_OPENED = 0x0C

PY_OPEN = 0x10
PY_STOP = 0x11
PY_OUTPUT = 0x12
PY_CONTROL = 0x13
PY_CALL = 0x14
PY_CALLER = 0x15
PY_CONNECTED = 0x16
PY_TIMEOUT = 0x17
PY_FLUSH = 0x18
PY_ANSWER = 0x19
PY_PROCESS_EXIT = 0x1A
PY_SHM_ATTACH = 0x1B
PY_SHM_RELEASE = 0x1C

DRV_REPLY = 0x80
DRV_ERROR = 0x81
DRV_OUTPUT = 0x82
DRV_SET_CONTROL_FLAGS = 0x83
DRV_RESOLVE_PID = 0x84
DRV_OUTPUT2 = 0x85
DRV_OUTPUT_BINARY = 0x86
DRV_OUTPUTV = 0x87
DRV_OUTPUT_TERM = 0x88
DRV_SEND_TERM = 0x89
DRV_SET_TIMER = 0x8A
DRV_CANCEL_TIMER = 0x8B
DRV_FAILURE = 0x8C
DRV_SET_BUSY = 0x8D
DRV_ENQ = 0x8E
DRV_PUSHQ = 0x8F
DRV_DEQ = 0x90
DRV_MONITOR = 0x91
DRV_DEMONITOR = 0x92
DRV_SYSTEM_INFO = 0x93
DRV_TIME = 0x94
DRV_GETENV = 0x95
DRV_PUTENV = 0x96
DRV_SET_OS_PID = 0x97
DRV_BUSY_MSGQ_LIMITS = 0x98
DRV_CREATE_PORT = 0x99
DRV_SHM_WANT = 0x9A
DRV_SHM_RETURN = 0x9B
DRV_HUNG = 0x9C
DRV_MK_ATOM = 0x9D

TIME_MONOTONIC = 0
TIME_OFFSET = 1

T_EXT = 0x01
T_PID = 0x02
T_PORT = 0x03
T_NIL = 0x04
T_TUPLE = 0x05
T_LIST = 0x06
T_MAP = 0x07

FAIL_CODE = 0
FAIL_ATOM = 1
FAIL_POSIX = 2
FAIL_EOF = 3

FL_WRAPPED = 0x01
FL_NONE = 0x01
OPEN_BLOCKING = 0x01
OPEN_PORT_LOCKING = 0x02
CB_OUTPUT = 0x01
CB_OUTPUTV = 0x02
CB_CONTROL = 0x04
CB_CALL = 0x08
CB_FLUSH = 0x10
CB_PROCESS_EXIT = 0x20
FL_CREATED = 0x01
FL_SHM = 0x80
FL_MORE = 0x01

PB_CALL_CONTROL = 0xFFFFFF01
PB_CALL_CALL = 0xFFFFFF02
PB_CALL_INFO = 0xFFFFFF03
PB_CALL_FORGET = 0xFFFFFF04

MGR_SPAWN = 1
# ---- end of opcodes ----

# ---- limits: keep equal to docs/PROTOCOL.md ----
DEFAULT_TIMEOUT_MS = 5000
DEFAULT_MAX_FRAME = 256 << 20
MIN_MAX_FRAME = 64
DEFAULT_SPIN_US = 50
MAX_SPIN_US = 10000
DEFAULT_CALLBACK_LIMIT_MS = 60000
SHM_MIN = 64 << 10          # bodies from this size go through the port's shared memory
MAX_CTL_MSG = 64 << 10      # the largest ctl message; longer call bodies go in pieces
# ---- end of limits ----

HEADER = struct.Struct(">IBBI")     # len, op, fl, id; len counts the bytes after itself
HDR_LEN = HEADER.size
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")


def frame(op: int, body: bytes = b"", fl: int = 0, rid: int = 0) -> bytes:
    """One whole frame (the ctl socket's, and tests'): a port's frames go through the writer."""
    return HEADER.pack(len(body) + 6, op, fl, rid) + body
