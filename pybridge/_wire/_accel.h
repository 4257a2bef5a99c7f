/* What the units of pybridge._wire._accel share: the frame layout of docs/PROTOCOL.md
 * ("Framing": u32 length of what follows, u8 op, u8 flags, u32 id, body; big-endian), the
 * interned names they call, and the writer's lock. */
#ifndef PB_ACCEL_H
#define PB_ACCEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define HDR_LEN 10
#define PY_OUTPUT 0x12
#define FL_SHM 0x80

extern PyObject *pba_ProtocolError, *pba_StructError;
/* interned method and attribute names */
extern PyObject *pba_s_closed, *pba_s_dispatch, *pba_s_deliver, *pba_s_on_output,
    *pba_s_resume, *pba_s_from_ring, *pba_s_send_large;

extern PyTypeObject pba_LockType, pba_ReaderType, pba_WriterType, pba_LentType;

/* threading.Lock's behaviour, its PyThread lock reachable from C */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char locked;
} pba_Lock;

int pba_lock_take(pba_Lock *lock);      /* 0, or -1: a signal handler raised meanwhile */
void pba_lock_give(pba_Lock *lock);

static inline uint32_t pba_get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void pba_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

#endif
