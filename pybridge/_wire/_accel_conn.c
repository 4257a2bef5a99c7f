/* pybridge._wire._accel.ConnCore: the C base of _runtime.cconn.CConn, a port whose per-frame
 * work is compiled (issue 14). Its members are the Conn attributes this work reads (closed,
 * runner, hold, the driver's bound callbacks, busy, the writer, ...), so Python sets them as
 * before and C reads them without a lookup. It does in C what these do in Python, for the
 * common cases only, and hands every other case to the very Python code it stands for:
 *  - on_readable / flush / queued: Conn's, but a port with frames set aside by an ask, EOF,
 *    a ProtocolError (took, bad_frames), a flush off the loop thread (push), a port held
 *    by a coroutine (rearm), or with the pure-Python reader or writer (Conn's own methods,
 *    on_readable_py and flush_py);
 *  - pba_conn_frame, called by the Reader's drain for each frame: a PY_OUTPUT of one piece
 *    to outputv / output (Conn.deliver; a zero_copy port's goes there itself), a PY_CONTROL
 *    that is not wrapped to control, with the watchdog's deadline set around it
 *    (handlers.answer), and its bytes or None framed as DRV_REPLY (handlers.control_reply);
 *    other results and exceptions go to control_done / control_failed, exceptions of
 *    output to log_exception.
 * Only while neither a port's thread (port-level locking) nor a coroutine holds the port:
 * otherwise every frame takes Conn.dispatch, as with PYBRIDGE_PURE=1. */
#include "_accel.h"

#include <structmember.h>
#include <time.h>

#define PY_CONTROL 0x13
#define PY_CALL 0x14
#define DRV_REPLY 0x80
#define FL_WRAPPED 0x01
#define FL_NONE 0x01

typedef struct {
    PyObject_HEAD
    char closed;
    char zero_copy;             /* output(v) gets memoryviews: Conn.deliver's (_runtime.views) */
    PyObject *runner, *hold, *instance, *busy, *pending, *reader, *writer, *channel, *dirty;
    PyObject *outputv_fn, *output_fn;
    long long timeout_ms;
    unsigned long long loop_ident;
    double late;                /* seconds past the caller's timeout before Timeout */
    Py_ssize_t out_high;        /* unsent bytes that pause reading (channel.OUT_HIGH) */
} Conn;

static PyObject *zero;          /* 0.0: no deadline */
static PyTypeObject *seen_writer, *seen_reader;     /* pba_is */

static inline int is_none(PyObject *o)
{
    return o == NULL || o == Py_None;
}

/* self.name(*args), args[1..n] */
static PyObject *call_method(Conn *c, PyObject *name, PyObject **args, size_t n)
{
    args[0] = (PyObject *)c;
    return PyObject_VectorcallMethod(name, args, (n + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* the exception being raised, taken and given to self.name(exc[, arg]): what
 * `except BaseException as e: self.name(e[, arg])` does */
static PyObject *caught(Conn *c, PyObject *name, PyObject *arg)
{
    PyObject *type, *value, *tb, *r = NULL;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL) {
        if (tb != NULL)
            PyException_SetTraceback(value, tb);
        PyObject *args[3] = {NULL, value, arg};
        r = call_method(c, name, args, arg ? 2 : 1);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return r;
}

int pba_conn_closed(PyObject *sink)
{
    return ((Conn *)sink)->closed;
}

/* Conn.deliver of one piece, driver-level locking, no coroutine holding the port */
static PyObject *deliver(Conn *c, PyObject *fn, int v, PyObject *piece)
{
    PyObject *arg = piece, *r;
    if (v) {
        arg = PyList_New(1);
        if (arg == NULL) {
            Py_DECREF(piece);
            return NULL;
        }
        PyList_SET_ITEM(arg, 0, piece);
    }
    Py_INCREF(fn);              /* a reload may rebind the port's callbacks meanwhile */
    r = PyObject_CallOneArg(fn, arg);
    Py_DECREF(fn);
    Py_DECREF(arg);
    if (r != NULL && Py_IS_TYPE(r, &PyCoro_Type)) {
        PyObject *args[3] = {NULL, r, pba_s_output};
        PyObject *started = call_method(c, pba_s_run_coroutine, args, 2);
        Py_DECREF(r);
        r = started;
    }
    if (r == NULL)
        return caught(c, pba_s_log_exception, pba_s_output);
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);    /* time.monotonic's clock */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* busy.deadline = 0.0 under busy.lock: the watchdog must not interrupt what follows the
 * callback. The callback's exception, if any, is kept across. */
static int end_deadline(PyObject *busy)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *lock = PyObject_GetAttr(busy, pba_s_lock);
    int rc = -1;
    if (lock != NULL && Py_IS_TYPE(lock, &pba_LockType)) {
        if (pba_lock_take((pba_Lock *)lock) == 0) {
            rc = PyObject_SetAttr(busy, pba_s_deadline, zero);
            pba_lock_give((pba_Lock *)lock);
        }
    } else if (lock != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(lock, pba_s_acquire);
        if (r != NULL) {
            Py_DECREF(r);
            rc = PyObject_SetAttr(busy, pba_s_deadline, zero);
            r = PyObject_CallMethodNoArgs(lock, pba_s_release);
            Py_XDECREF(r);
            rc = r == NULL ? -1 : rc;
        }
    }
    Py_XDECREF(lock);
    if (type != NULL) {
        if (rc < 0)             /* a signal handler's exception replaces the callback's */
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
        return -1;
    }
    return rc;
}

/* handlers.answer of a control or call that is not wrapped, its callback fn found, with
 * (cmd, arg): the watchdog's deadline around fn(cmd, arg), then the common results framed
 * here (control: bytes or None; call: a plain term), the others given to CConn's
 * control_done / call_done, an exception to control_failed / call_failed */
static PyObject *request(Conn *c, int call, PyObject *fn, uint32_t rid, PyObject *cmd,
                         PyObject *arg)
{
    PyObject *busy = c->busy, *r = NULL, *rid_o;
    PyObject *deadline = PyFloat_FromDouble(
        c->timeout_ms ? monotonic() + c->timeout_ms / 1000.0 + c->late : 0.0);
    Py_XINCREF(busy);
    if (cmd != NULL && arg != NULL && deadline != NULL && busy != NULL &&
        PyObject_SetAttr(busy, pba_s_deadline, deadline) == 0) {
        PyObject *args[3] = {NULL, cmd, arg};
        r = PyObject_Vectorcall(fn, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (end_deadline(busy) < 0)
            Py_CLEAR(r);
    }
    Py_XDECREF(deadline);
    Py_XDECREF(busy);
    int sent = -1;
    if (r != NULL && call) {
        PyObject *none = PyObject_GetAttr((PyObject *)c, pba_s_none_atom);
        PyObject *etf = none ? pba_etf_plain(r, none, 0) : NULL;
        if (etf != NULL)
            sent = pba_writer_send(c->writer, DRV_REPLY, 0, rid, etf);
        Py_XDECREF(etf);
        Py_XDECREF(none);
    } else if (r == Py_None) {
        sent = pba_writer_send(c->writer, DRV_REPLY, FL_NONE, rid, NULL);
    } else if (r != NULL && PyBytes_CheckExact(r)) {
        sent = pba_writer_send(c->writer, DRV_REPLY, 0, rid, r);
    }
    if (sent == 0) {
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    if ((rid_o = PyLong_FromUnsignedLong(rid)) == NULL) {
        Py_XDECREF(r);
        return NULL;
    }
    PyObject *done;
    if (r != NULL && !PyErr_Occurred()) {
        /* a coroutine, bytearray, str, a term not plain...: handlers' own reply */
        PyObject *args[3] = {NULL, rid_o, r};
        done = call_method(c, call ? pba_s_call_done : pba_s_control_done, args, 2);
    } else {
        done = caught(c, call ? pba_s_call_failed : pba_s_control_failed, rid_o);
    }
    Py_XDECREF(r);
    Py_DECREF(rid_o);
    return done;
}

/* handlers.on_call's decode(body[4:], none_atom), or NULL (no exception): Python must */
static PyObject *decoded(Conn *c, const unsigned char *body, Py_ssize_t n)
{
    PyObject *none = PyObject_GetAttr((PyObject *)c, pba_s_none_atom);
    PyObject *term = none ? pba_etf_decode_plain(body + 4, n - 4, none) : NULL;
    Py_XDECREF(none);
    if (term == NULL)
        PyErr_Clear();          /* handlers.on_call decodes it, or answers its error */
    return term;
}

int pba_conn_frame(PyObject *sink, int op, int fl, uint32_t rid, const unsigned char *body,
                   Py_ssize_t n, PyObject **result)
{
    Conn *c = (Conn *)sink;
    if (!is_none(c->runner) || !is_none(c->hold) || c->writer == NULL ||
        !pba_is(c->writer, &pba_WriterType, &seen_writer))
        return 0;
    if (op == PY_OUTPUT && !rid) {
        if (c->zero_copy) return 0;
        PyObject *fn = is_none(c->outputv_fn) ? c->output_fn : c->outputv_fn;
        if (is_none(fn) || n < 4 || pba_get32(body) != (uint32_t)(n - 4))
            return 0;           /* several pieces, or no callback: Conn.on_output */
        PyObject *piece = PyBytes_FromStringAndSize((const char *)body + 4, n - 4);
        *result = piece ? deliver(c, fn, fn == c->outputv_fn, piece) : NULL;
        return 1;
    }
    int call = op == PY_CALL;
    if ((op != PY_CONTROL && !call) || (fl & FL_WRAPPED) || n < 4 || is_none(c->instance))
        return 0;
    PyObject *fn = PyObject_GetAttr(c->instance, call ? pba_s_call : pba_s_control);
    if (fn == NULL || fn == Py_None) {
        /* no callback (badarg), or a lookup that raises: handlers.answer says which */
        PyErr_Clear();
        Py_XDECREF(fn);
        return 0;
    }
    PyObject *arg = call ? decoded(c, body, n)
                         : PyBytes_FromStringAndSize((const char *)body + 4, n - 4);
    if (arg == NULL && !PyErr_Occurred()) {
        Py_DECREF(fn);
        return 0;
    }
    PyObject *cmd = PyLong_FromUnsignedLong(pba_get32(body));
    *result = request(c, call, fn, rid, cmd, arg);
    Py_XDECREF(cmd);
    Py_XDECREF(arg);
    Py_DECREF(fn);
    return 1;
}

/* the writer of a port whose calls from this thread need no routing (Conn.owns, without
 * a port thread), or NULL */
PyObject *pba_conn_writer(PyObject *conn)
{
    Conn *c = (Conn *)conn;
    if (!PyObject_TypeCheck(conn, &pba_ConnType) || !is_none(c->runner) ||
        c->dirty == NULL || PyThread_get_thread_ident() != c->loop_ident ||
        c->writer == NULL || !pba_is(c->writer, &pba_WriterType, &seen_writer))
        return NULL;
    return c->writer;
}

/* rearm(): what the Poller watches the channel for, changed only when that changes */
static PyObject *rearm(Conn *c)
{
    Py_ssize_t outlen;
    int waiting;
    if (c->closed)
        Py_RETURN_NONE;
    if (!is_none(c->hold) || c->channel == NULL || pba_writer_state(c->writer, &outlen,
                                                                    &waiting) < 0) {
        PyObject *args[1];
        return call_method(c, pba_s_rearm, args, 0);
    }
    int reading = outlen < c->out_high, was_reading, was_writing;
    PyObject *r = PyObject_GetAttr(c->channel, pba_s_reading);
    PyObject *w = r ? PyObject_GetAttr(c->channel, pba_s_writing) : NULL;
    was_reading = r ? PyObject_IsTrue(r) : -1;
    was_writing = w ? PyObject_IsTrue(w) : -1;
    Py_XDECREF(r);
    Py_XDECREF(w);
    if (was_reading < 0 || was_writing < 0)
        return NULL;
    if (reading == was_reading && waiting == was_writing)
        Py_RETURN_NONE;
    PyObject *args[4] = {c->channel, reading ? Py_True : Py_False,
                         waiting ? Py_True : Py_False, (PyObject *)c};
    return PyObject_VectorcallMethod(pba_s_watch, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     NULL);
}

/* flush(): the loop thread writes what callbacks queued (Conn.flush) */
static PyObject *Conn_flush(Conn *c, PyObject *unused)
{
    PyObject *args[1];
    Py_ssize_t outlen;
    int waiting;
    if (c->dirty == NULL || PyThread_get_thread_ident() != c->loop_ident)
        return call_method(c, pba_s_push, args, 0);
    if (c->writer == NULL || !pba_is(c->writer, &pba_WriterType, &seen_writer) ||
        pba_writer_state(c->writer, &outlen, &waiting) < 0)
        return call_method(c, pba_s_flush_py, args, 0);    /* the pure-Python writer's */
    if (PySet_Discard(c->dirty, (PyObject *)c) < 0)
        return NULL;
    if (waiting && !c->closed) {
        PyObject *ok = pba_writer_write_out(c->writer);
        if (ok == NULL)
            return NULL;
        Py_DECREF(ok);
        if (ok == Py_False) {
            PyObject *r = call_method(c, pba_s_close, args, 0);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
            Py_RETURN_NONE;
        }
    }
    return rearm(c);
}

/* queued(): the writer queued a frame where none waited (PortThreads.queued) */
static PyObject *Conn_queued(Conn *c, PyObject *unused)
{
    if (c->dirty == NULL || PyThread_get_thread_ident() != c->loop_ident) {
        PyObject *args[1];
        return call_method(c, pba_s_queued_py, args, 0);
    }
    if (PySet_Add(c->dirty, (PyObject *)c) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* on_readable(): what the channel has, read and handed out, then flushed (Conn.on_readable) */
static PyObject *Conn_on_readable(Conn *c, PyObject *unused)
{
    PyObject *args[2];
    if (c->reader == NULL || !pba_is(c->reader, &pba_ReaderType, &seen_reader))
        return call_method(c, pba_s_on_readable_py, args, 0);  /* the pure-Python reader */
    PyObject *filled = pba_reader_fill(c->reader);
    if (filled == NULL)
        return NULL;
    Py_ssize_t pending = c->pending ? PyObject_Length(c->pending) : 0;
    if (filled == Py_False || pending != 0) {
        /* EOF, frames an ask set aside (or no length): Conn.took */
        if (pending < 0)
            PyErr_Clear();
        args[1] = filled;
        PyObject *r = call_method(c, pba_s_took, args, 1);
        Py_DECREF(filled);
        return r;
    }
    Py_DECREF(filled);
    PyObject *r = pba_reader_drain(c->reader, (PyObject *)c);
    if (r == NULL) {
        if (!PyErr_ExceptionMatches(pba_ProtocolError))
            return NULL;
        return caught(c, pba_s_bad_frames, NULL);
    }
    Py_DECREF(r);
    return Conn_flush(c, NULL);
}

static int Conn_traverse(Conn *c, visitproc visit, void *arg)
{
    Py_VISIT(c->runner);
    Py_VISIT(c->hold);
    Py_VISIT(c->instance);
    Py_VISIT(c->busy);
    Py_VISIT(c->pending);
    Py_VISIT(c->reader);
    Py_VISIT(c->writer);
    Py_VISIT(c->channel);
    Py_VISIT(c->dirty);
    Py_VISIT(c->outputv_fn);
    Py_VISIT(c->output_fn);
    return 0;
}

static int Conn_clear(Conn *c)
{
    Py_CLEAR(c->runner);
    Py_CLEAR(c->hold);
    Py_CLEAR(c->instance);
    Py_CLEAR(c->busy);
    Py_CLEAR(c->pending);
    Py_CLEAR(c->reader);
    Py_CLEAR(c->writer);
    Py_CLEAR(c->channel);
    Py_CLEAR(c->dirty);
    Py_CLEAR(c->outputv_fn);
    Py_CLEAR(c->output_fn);
    return 0;
}

static void Conn_dealloc(Conn *c)
{
    PyObject_GC_UnTrack(c);
    Conn_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyMethodDef Conn_methods[] = {
    {"on_readable", (PyCFunction)Conn_on_readable, METH_NOARGS,
     "Read what the channel has, hand its frames out, flush."},
    {"flush", (PyCFunction)Conn_flush, METH_NOARGS, "Write what callbacks queued."},
    {"queued", (PyCFunction)Conn_queued, METH_NOARGS,
     "The writer queued a frame: the loop thread flushes it."},
    {NULL, NULL, 0, NULL}
};

#define OBJ(name) {#name, T_OBJECT, offsetof(Conn, name), 0, NULL}
static PyMemberDef Conn_members[] = {
    {"closed", T_BOOL, offsetof(Conn, closed), 0, NULL},
    {"zero_copy", T_BOOL, offsetof(Conn, zero_copy), 0, NULL},
    OBJ(runner), OBJ(hold), OBJ(instance), OBJ(busy), OBJ(pending), OBJ(reader), OBJ(writer),
    OBJ(channel), OBJ(dirty), OBJ(outputv_fn), OBJ(output_fn),
    {"timeout_ms", T_LONGLONG, offsetof(Conn, timeout_ms), 0, NULL},
    {"loop_ident", T_ULONGLONG, offsetof(Conn, loop_ident), 0, NULL},
    {"late", T_DOUBLE, offsetof(Conn, late), 0, NULL},
    {"out_high", T_PYSSIZET, offsetof(Conn, out_high), 0, NULL},
    {NULL, 0, 0, 0, NULL}
};

int pba_conn_ready(void)
{
    return (zero = PyFloat_FromDouble(0.0)) == NULL ? -1 : 0;
}

PyTypeObject pba_ConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pybridge._wire._accel.ConnCore",
    .tp_basicsize = sizeof(Conn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The state a port's compiled per-frame work reads, and that work.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Conn_dealloc,
    .tp_traverse = (traverseproc)Conn_traverse,
    .tp_clear = (inquiry)Conn_clear,
    .tp_methods = Conn_methods,
    .tp_members = Conn_members,
};
