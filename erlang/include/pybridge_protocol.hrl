%% Opcodes of the pybridge wire protocol. docs/PROTOCOL.md is normative;
%% the names and values here equal c_src/pybridge_protocol.h and pybridge/_wire/protocol.py.
%% The frame layout and the ctl bodies Erlang reads and writes: pybridge_ctl.

-define(PB_PROTOCOL_VERSION, 4).

%% ---- opcodes: keep equal to docs/PROTOCOL.md ----
-define(CTL_HELLO, 16#01).
-define(CTL_NEW_PORT, 16#02).
-define(CTL_PID_INFO, 16#03).
-define(CTL_LOG, 16#04).
-define(CTL_WORKER_EXIT, 16#05).
-define(CTL_CLASS_INFO, 16#06).
-define(CTL_SHM, 16#07).
-define(CTL_HUNG, 16#08).
-define(CTL_RELOAD, 16#09).
-define(CTL_ERL_CALL, 16#0A).
-define(CTL_ERL_RESULT, 16#0B).
-define(CTL_PORT_OPENED, 16#0C).

-define(PY_OPEN, 16#10).
-define(PY_STOP, 16#11).
-define(PY_OUTPUT, 16#12).
-define(PY_CONTROL, 16#13).
-define(PY_CALL, 16#14).
-define(PY_CALLER, 16#15).
-define(PY_CONNECTED, 16#16).
-define(PY_TIMEOUT, 16#17).
-define(PY_FLUSH, 16#18).
-define(PY_ANSWER, 16#19).
-define(PY_PROCESS_EXIT, 16#1A).
-define(PY_SHM_ATTACH, 16#1B).
-define(PY_SHM_RELEASE, 16#1C).

-define(DRV_REPLY, 16#80).
-define(DRV_ERROR, 16#81).
-define(DRV_OUTPUT, 16#82).
-define(DRV_SET_CONTROL_FLAGS, 16#83).
-define(DRV_RESOLVE_PID, 16#84).
-define(DRV_OUTPUT2, 16#85).
-define(DRV_OUTPUT_BINARY, 16#86).
-define(DRV_OUTPUTV, 16#87).
-define(DRV_OUTPUT_TERM, 16#88).
-define(DRV_SEND_TERM, 16#89).
-define(DRV_SET_TIMER, 16#8A).
-define(DRV_CANCEL_TIMER, 16#8B).
-define(DRV_FAILURE, 16#8C).
-define(DRV_SET_BUSY, 16#8D).
-define(DRV_ENQ, 16#8E).
-define(DRV_PUSHQ, 16#8F).
-define(DRV_DEQ, 16#90).
-define(DRV_MONITOR, 16#91).
-define(DRV_DEMONITOR, 16#92).
-define(DRV_SYSTEM_INFO, 16#93).
-define(DRV_TIME, 16#94).
-define(DRV_GETENV, 16#95).
-define(DRV_PUTENV, 16#96).
-define(DRV_SET_OS_PID, 16#97).
-define(DRV_BUSY_MSGQ_LIMITS, 16#98).
-define(DRV_CREATE_PORT, 16#99).
-define(DRV_SHM_WANT, 16#9A).
-define(DRV_SHM_RETURN, 16#9B).
-define(DRV_HUNG, 16#9C).
-define(DRV_MK_ATOM, 16#9D).

-define(TIME_MONOTONIC, 0).
-define(TIME_OFFSET, 1).

-define(T_EXT, 16#01).
-define(T_PID, 16#02).
-define(T_PORT, 16#03).
-define(T_NIL, 16#04).
-define(T_TUPLE, 16#05).
-define(T_LIST, 16#06).
-define(T_MAP, 16#07).

-define(FAIL_CODE, 0).
-define(FAIL_ATOM, 1).
-define(FAIL_POSIX, 2).
-define(FAIL_EOF, 3).

-define(FL_WRAPPED, 16#01).
-define(FL_NONE, 16#01).
-define(OPEN_BLOCKING, 16#01).
-define(OPEN_PORT_LOCKING, 16#02).
-define(CB_OUTPUT, 16#01).
-define(CB_OUTPUTV, 16#02).
-define(CB_CONTROL, 16#04).
-define(CB_CALL, 16#08).
-define(CB_FLUSH, 16#10).
-define(CB_PROCESS_EXIT, 16#20).
-define(FL_CREATED, 16#01).
-define(FL_SHM, 16#80).
-define(FL_MORE, 16#01).

-define(PB_CALL_CONTROL, 16#FFFFFF01).
-define(PB_CALL_CALL, 16#FFFFFF02).
-define(PB_CALL_INFO, 16#FFFFFF03).
-define(PB_CALL_FORGET, 16#FFFFFF04).

-define(MGR_SPAWN, 1).
%% ---- end of opcodes ----

%% ---- limits: keep equal to docs/PROTOCOL.md ----
-define(DEFAULT_TIMEOUT_MS, 5000).
-define(DEFAULT_MAX_FRAME, 268435456).
-define(MIN_MAX_FRAME, 64).
-define(DEFAULT_SPIN_US, 50).
-define(MAX_SPIN_US, 10000).
-define(MAX_WORKERS, 64).
-define(DEFAULT_CALLBACK_LIMIT_MS, 60000).
-define(MAX_CTL_MSG, 65536).
%% ---- end of limits ----
