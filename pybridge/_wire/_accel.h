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
#define PBA_SMALL 512           /* bodies under this are joined to their header */

extern PyObject *pba_ProtocolError, *pba_StructError;
/* interned method and attribute names */
extern PyObject *pba_s_closed, *pba_s_dispatch, *pba_s_deliver, *pba_s_on_output,
    *pba_s_resume, *pba_s_from_ring, *pba_s_send_large;
/* those of the port's compiled work (_accel_conn.c) */
extern PyObject *pba_s_output, *pba_s_control, *pba_s_log_exception, *pba_s_run_coroutine,
    *pba_s_control_done, *pba_s_control_failed, *pba_s_took, *pba_s_bad_frames, *pba_s_push,
    *pba_s_close, *pba_s_rearm, *pba_s_reading, *pba_s_writing, *pba_s_watch, *pba_s_lock,
    *pba_s_deadline, *pba_s_acquire, *pba_s_release, *pba_s_queued_py, *pba_s_call,
    *pba_s_call_done, *pba_s_call_failed, *pba_s_none_atom, *pba_s_flush_py,
    *pba_s_on_readable_py;
/* those of the handle's (_accel_port.c) */
extern PyObject *pba_s_b, *pba_s_c, *pba_s_send, *pba_s_output_py, *pba_s_outputv_py,
    *pba_s_output_term_py;

extern PyTypeObject pba_LockType, pba_ReaderType, pba_WriterType, pba_LentType, pba_ConnType,
    pba_PortType;

/* the Reader's and Writer's work, called from the port's (_accel_conn.c) */
PyObject *pba_reader_fill(PyObject *reader);
PyObject *pba_reader_drain(PyObject *reader, PyObject *sink);
/* one frame queued as send(op, body, fl, rid) does (body: bytes or NULL); 0, or -1 */
int pba_writer_send(PyObject *writer, int op, int fl, uint32_t rid, PyObject *body);
/* the same of a small body given as bytes at data: 0, -1 (an exception), or -2: it is not
 * small (n >= PBA_SMALL or over max_frame), send() must take it */
int pba_writer_queue(PyObject *writer, int op, int fl, uint32_t rid, const char *data,
                     Py_ssize_t n);
int pba_writer_state(PyObject *writer, Py_ssize_t *outlen, int *waiting);
PyObject *pba_writer_write_out(PyObject *writer);
/* the port's: 1 and *result (a new reference, or NULL: an exception) if it handled the frame,
 * 0 if Conn.dispatch and the sink's methods must */
int pba_conn_frame(PyObject *sink, int op, int fl, uint32_t rid, const unsigned char *body,
                   Py_ssize_t n, PyObject **result);
int pba_conn_closed(PyObject *sink);
PyObject *pba_conn_writer(PyObject *conn);
int pba_conn_ready(void);
/* _accel_etf.c: b"\x83" + the ETF of a plain term after `room` zero bytes (room <= 16), as
 * _encode.encode(term, none_atom) writes it; NULL: an exception, or, with none set, the term
 * is not plain (the Python encoder must) */
PyObject *pba_etf_plain(PyObject *term, PyObject *none_atom, Py_ssize_t room);
PyObject *pba_encode_plain(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);
/* the term of ETF data (131 first) as _decode.decode(data, none_atom) makes it, if it is
 * plain; NULL: an exception, or, with none set, not plain (or malformed: decode says) */
PyObject *pba_etf_decode_plain(const unsigned char *data, Py_ssize_t n, PyObject *none_atom);
PyObject *pba_decode_plain(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);

/* threading.Lock's behaviour, its PyThread lock reachable from C */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char locked;
} pba_Lock;

int pba_lock_take(pba_Lock *lock);      /* 0, or -1: a signal handler raised meanwhile */
void pba_lock_give(pba_Lock *lock);

/* PyObject_TypeCheck(o, t), the last type that passed kept in *seen (with a reference, so
 * that its address stays its own): the hot path asks it of the same types per frame */
static inline int pba_is(PyObject *o, PyTypeObject *t, PyTypeObject **seen)
{
    if (Py_TYPE(o) == *seen)
        return 1;
    if (!PyObject_TypeCheck(o, t))
        return 0;
    Py_INCREF(Py_TYPE(o));
    Py_XSETREF(*seen, Py_TYPE(o));
    return 1;
}

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
