/*
 * pybridge_protocol.h - the wire format shared by every C file of the driver: opcodes,
 * frame header, big-endian integers. docs/PROTOCOL.md is normative; this is its C side,
 * and tests/python/test_protocol_tables.py checks the opcode table below against it.
 *
 * Grammar (integers big-endian):
 *
 *   frame     = len:u32 op:u8 fl:u8 id:u32 body        len = 6 + |body|, len <= max_frame
 *   body      = bytes
 *             | pos:u64 len:u64                         when fl has FL_SHM: the bytes are
 *                                                       in the sender's shared-memory ring
 *   ctl       = one frame per SOCK_SEQPACKET message    CTL_* (SCM_RIGHTS on NEW_PORT, SHM)
 *   channel   = frame*                                  a user port's pipes (or socketpair)
 *
 *   open      = PY_OPEN(id) -> DRV_REPLY(id, flags:u32?) | DRV_ERROR(id, etf)
 *   request   = PY_CONTROL | PY_CALL | strict PY_OUTPUT, PY_TIMEOUT (id)
 *                 -> DRV_REPLY(id) | DRV_ERROR(id)     other frames may come first; a
 *                                                       wrapped one's answer may come
 *                                                       after port_call has returned
 *   api       = DRV_MONITOR .. DRV_PUTENV, DRV_CREATE_PORT, DRV_BUSY_MSGQ_LIMITS,
 *               DRV_MK_ATOM (id)
 *                 -> PY_ANSWER(id, status:u8 data)
 *   event     = every other PY_* / DRV_* frame, id 0, no answer
 *
 *   program   = step+                                   DRV_OUTPUT_TERM, DRV_SEND_TERM
 *   step      = T_EXT len:u32 etf | T_PID raw:u64 | T_PORT | T_NIL
 *             | T_TUPLE n:u32 | T_LIST n:u32 | T_MAP n:u32
 */
#ifndef PYBRIDGE_PROTOCOL_H
#define PYBRIDGE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define PB_PROTOCOL_VERSION 4
#define PB_DRIVER_VERSION "0.1.0"

/* ---- opcodes: keep equal to docs/PROTOCOL.md ---- */
#define CTL_HELLO 0x01
#define CTL_NEW_PORT 0x02
#define CTL_PID_INFO 0x03
#define CTL_LOG 0x04
#define CTL_WORKER_EXIT 0x05
#define CTL_CLASS_INFO 0x06
#define CTL_SHM 0x07
#define CTL_HUNG 0x08
#define CTL_RELOAD 0x09
#define CTL_ERL_CALL 0x0A
#define CTL_ERL_RESULT 0x0B
#define CTL_PORT_OPENED 0x0C

#define PY_OPEN 0x10
#define PY_STOP 0x11
#define PY_OUTPUT 0x12
#define PY_CONTROL 0x13
#define PY_CALL 0x14
#define PY_CALLER 0x15
#define PY_CONNECTED 0x16
#define PY_TIMEOUT 0x17
#define PY_FLUSH 0x18
#define PY_ANSWER 0x19
#define PY_PROCESS_EXIT 0x1A
#define PY_SHM_ATTACH 0x1B
#define PY_SHM_RELEASE 0x1C

#define DRV_REPLY 0x80
#define DRV_ERROR 0x81
#define DRV_OUTPUT 0x82
#define DRV_SET_CONTROL_FLAGS 0x83
#define DRV_RESOLVE_PID 0x84
#define DRV_OUTPUT2 0x85
#define DRV_OUTPUT_BINARY 0x86
#define DRV_OUTPUTV 0x87
#define DRV_OUTPUT_TERM 0x88
#define DRV_SEND_TERM 0x89
#define DRV_SET_TIMER 0x8A
#define DRV_CANCEL_TIMER 0x8B
#define DRV_FAILURE 0x8C
#define DRV_SET_BUSY 0x8D
#define DRV_ENQ 0x8E
#define DRV_PUSHQ 0x8F
#define DRV_DEQ 0x90
#define DRV_MONITOR 0x91
#define DRV_DEMONITOR 0x92
#define DRV_SYSTEM_INFO 0x93
#define DRV_TIME 0x94
#define DRV_GETENV 0x95
#define DRV_PUTENV 0x96
#define DRV_SET_OS_PID 0x97
#define DRV_BUSY_MSGQ_LIMITS 0x98
#define DRV_CREATE_PORT 0x99
#define DRV_SHM_WANT 0x9A
#define DRV_SHM_RETURN 0x9B
#define DRV_HUNG 0x9C
#define DRV_MK_ATOM 0x9D

#define TIME_MONOTONIC 0
#define TIME_OFFSET 1

#define T_EXT 0x01
#define T_PID 0x02
#define T_PORT 0x03
#define T_NIL 0x04
#define T_TUPLE 0x05
#define T_LIST 0x06
#define T_MAP 0x07

#define FAIL_CODE 0
#define FAIL_ATOM 1
#define FAIL_POSIX 2
#define FAIL_EOF 3

#define FL_WRAPPED 0x01
#define FL_NONE 0x01
#define OPEN_BLOCKING 0x01
#define OPEN_PORT_LOCKING 0x02
#define CB_OUTPUT 0x01
#define CB_OUTPUTV 0x02
#define CB_CONTROL 0x04
#define CB_CALL 0x08
#define CB_FLUSH 0x10
#define CB_PROCESS_EXIT 0x20
#define FL_CREATED 0x01
#define FL_SHM 0x80
#define FL_MORE 0x01

#define PB_CALL_CONTROL 0xFFFFFF01u
#define PB_CALL_CALL 0xFFFFFF02u
#define PB_CALL_INFO 0xFFFFFF03u
#define PB_CALL_FORGET 0xFFFFFF04u

#define MGR_SPAWN 1
/* ---- end of opcodes ---- */

/* ---- limits: keep equal to docs/PROTOCOL.md ---- */
#define DEFAULT_TIMEOUT_MS 5000u         /* control, call and open wait this long for Python */
#define DEFAULT_MAX_FRAME (256u << 20)   /* max_frame unless the app env sets it */
#define MIN_MAX_FRAME 64
#define MAX_SPIN_US 10000u               /* spin_us is capped: a scheduler is held */
#define MAX_WORKERS 64
#define SHM_MIN (64u << 10)              /* bodies from this size travel in shared memory */
#define SHM_HALF (8u << 20)              /* each direction's ring; bigger bodies go inline */
#define MAX_CTL_MSG (64u << 10)          /* the largest ctl message (one frame) */
/* ---- end of limits ---- */

#define PB_CALL_RESERVED 0xFFFFFF00u     /* port_call commands from here up are ours */
#define HDR_LEN 10                       /* len:u32 op:u8 fl:u8 id:u32 */
#define HDR_AFTER_LEN 6                  /* what len counts besides the body */

static inline void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24); p[1] = (char)(v >> 16); p[2] = (char)(v >> 8); p[3] = (char)v;
}

static inline void put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static inline uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

static inline uint64_t get64(const char *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

/* The frame header for a body of blen bytes. */
static inline void mk_hdr(char *h, int op, int fl, uint32_t id, size_t blen)
{
    put32(h, (uint32_t)(blen + HDR_AFTER_LEN));
    h[4] = (char)op;
    h[5] = (char)fl;
    put32(h + 6, id);
}

#endif
