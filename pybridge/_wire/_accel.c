/* pybridge._wire._accel: the worker's per-frame hot path compiled (issue 14), behind the same
 * methods as the pure-Python code it stands for (PYBRIDGE_PURE=1 selects that instead):
 *  - Reader (_accel_reader.c): fill() / drain() / buffered() of _wire.reader.PyFrameReader;
 *  - Writer (_accel_writer.c): send() and write_out() of _wire.writer.PyFrameWriter, as a
 *    base class whose rare paths (send_large, send_parts, to_ring) stay the Python ones;
 *  - Lock (here): the writer's lock, which Writer takes without a Python call;
 *  - poll() (here): _runtime.poller.PyPoller.select() in one call;
 *  - ConnCore (_accel_conn.c): a port's on_readable, flush and the dispatch of its common
 *    frames (PY_OUTPUT, PY_CONTROL) to the driver's callbacks, with their replies;
 *  - PortCore (_accel_port.c): Port.output, outputv and output_term of their common shapes;
 *  - encode_plain, decode_plain (_accel_etf.c): the external format of plain terms.
 * This unit holds the module, the Lock and poll(). */
#include "_accel.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sys/epoll.h>

#define MAX_EVENTS 1023         /* select.epoll.poll's default */

PyObject *pba_ProtocolError, *pba_StructError;
PyObject *pba_s_closed, *pba_s_dispatch, *pba_s_deliver, *pba_s_on_output, *pba_s_resume,
    *pba_s_from_ring, *pba_s_send_large;
PyObject *pba_s_output, *pba_s_control, *pba_s_log_exception, *pba_s_run_coroutine,
    *pba_s_control_done, *pba_s_control_failed, *pba_s_took, *pba_s_bad_frames, *pba_s_push,
    *pba_s_close, *pba_s_rearm, *pba_s_reading, *pba_s_writing, *pba_s_watch, *pba_s_lock,
    *pba_s_deadline, *pba_s_acquire, *pba_s_release, *pba_s_queued_py, *pba_s_call,
    *pba_s_call_done, *pba_s_call_failed, *pba_s_none_atom, *pba_s_flush_py,
    *pba_s_on_readable_py;
PyObject *pba_s_b, *pba_s_c, *pba_s_send, *pba_s_output_py, *pba_s_outputv_py,
    *pba_s_output_term_py;

/* ---------------------------------------------------------------- Lock */

int pba_lock_take(pba_Lock *self)
{
    PyLockStatus r = PyThread_acquire_lock_timed(self->lock, 0, 0);
    while (r != PY_LOCK_ACQUIRED) {
        /* as threading.Lock: the GIL released while waiting, signal handlers run */
        Py_BEGIN_ALLOW_THREADS
        r = PyThread_acquire_lock_timed(self->lock, -1, 1);
        Py_END_ALLOW_THREADS
        if (r == PY_LOCK_INTR && Py_MakePendingCalls() < 0)
            return -1;
    }
    self->locked = 1;
    return 0;
}

void pba_lock_give(pba_Lock *self)
{
    self->locked = 0;
    PyThread_release_lock(self->lock);
}

static PyObject *Lock_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    pba_Lock *self = (pba_Lock *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void Lock_dealloc(pba_Lock *self)
{
    if (self->lock != NULL) {
        if (self->locked)
            PyThread_release_lock(self->lock);
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Lock_acquire(pba_Lock *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"blocking", "timeout", NULL};
    int blocking = 1;
    double timeout = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|pd:acquire", names, &blocking, &timeout))
        return NULL;
    if (!blocking || timeout >= 0) {
        PY_TIMEOUT_T us = blocking ? (PY_TIMEOUT_T)(timeout * 1e6) : 0;
        PyLockStatus r;
        Py_BEGIN_ALLOW_THREADS
        r = PyThread_acquire_lock_timed(self->lock, us, 0);
        Py_END_ALLOW_THREADS
        if (r != PY_LOCK_ACQUIRED)
            Py_RETURN_FALSE;
        self->locked = 1;
        Py_RETURN_TRUE;
    }
    if (pba_lock_take(self) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *Lock_release(pba_Lock *self, PyObject *unused)
{
    if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    pba_lock_give(self);
    Py_RETURN_NONE;
}

static PyObject *Lock_exit(pba_Lock *self, PyObject *args)
{
    return Lock_release(self, NULL);
}

static PyObject *Lock_locked(pba_Lock *self, PyObject *unused)
{
    return PyBool_FromLong(self->locked);
}

static PyMethodDef Lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Lock_acquire, METH_VARARGS | METH_KEYWORDS, NULL},
    {"__enter__", (PyCFunction)(void (*)(void))Lock_acquire, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"release", (PyCFunction)Lock_release, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Lock_exit, METH_VARARGS, NULL},
    {"locked", (PyCFunction)Lock_locked, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}
};

PyTypeObject pba_LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pybridge._wire._accel.Lock",
    .tp_basicsize = sizeof(pba_Lock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "threading.Lock's behaviour; the compiled writer takes it without a call.",
    .tp_new = Lock_new,
    .tp_dealloc = (destructor)Lock_dealloc,
    .tp_methods = Lock_methods,
};

/* ---------------------------------------------------------------- poll */

static int poll_timeout(PyObject *t, int *ms)
{
    if (t == Py_None) {
        *ms = -1;
        return 0;
    }
    double s = PyFloat_AsDouble(t);
    if (s == -1 && PyErr_Occurred())
        return -1;
    /* as select.epoll.poll: rounded up to the millisecond, negative is forever */
    *ms = s < 0 ? -1 : s > INT_MAX / 1000 ? INT_MAX : (int)ceil(s * 1000);
    return 0;
}

/* poll(epfd, data, timeout): PyPoller.select(timeout), data its {fd: (data, EVENT_* bits)} */
static PyObject *accel_poll(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    struct epoll_event evs[MAX_EVENTS];
    int epfd, ms, n;
    if (nargs != 3 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "poll(epfd, data, timeout)");
        return NULL;
    }
    epfd = PyLong_AsLong(args[0]);
    if ((epfd == -1 && PyErr_Occurred()) || poll_timeout(args[2], &ms) < 0)
        return NULL;
    for (;;) {
        if (ms) {
            Py_BEGIN_ALLOW_THREADS
            n = epoll_wait(epfd, evs, MAX_EVENTS, ms);
            Py_END_ALLOW_THREADS
        } else {
            n = epoll_wait(epfd, evs, MAX_EVENTS, 0);
        }
        if (n >= 0)
            break;
        if (errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *fd = PyLong_FromLong(evs[i].data.fd);
        PyObject *entry = fd ? PyDict_GetItemWithError(args[1], fd) : NULL;
        Py_XDECREF(fd);
        if (entry == NULL || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_KeyError, "%d", evs[i].data.fd);
            Py_DECREF(out);
            return NULL;
        }
        long want = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
        uint32_t ev = evs[i].events;
        /* hang-up and error wake both directions, as in selectors */
        long bits = (((ev & ~EPOLLOUT) ? 1 : 0) | ((ev & ~EPOLLIN) ? 2 : 0)) & want;
        PyObject *item = Py_BuildValue("(Ol)", PyTuple_GET_ITEM(entry, 0), bits);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

static PyMethodDef accel_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))accel_poll, METH_FASTCALL,
     "poll(epfd, data, timeout): PyPoller.select's [(data, EVENT_* bits)]"},
    {"encode_plain", (PyCFunction)(void (*)(void))pba_encode_plain, METH_FASTCALL,
     "encode_plain(term, none_atom): _encode.encode's bytes of a plain term, else None"},
    {"decode_plain", (PyCFunction)(void (*)(void))pba_decode_plain, METH_FASTCALL,
     "decode_plain(data, none_atom): _decode.decode's term of plain ETF, else None"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT, "pybridge._wire._accel",
    "The worker's per-frame hot path, compiled (PYBRIDGE_PURE=1: the Python one).", -1,
    accel_methods, NULL, NULL, NULL, NULL,
};

static PyObject *import_attr(const char *mod, const char *name)
{
    PyObject *m = PyImport_ImportModule(mod);
    if (m == NULL)
        return NULL;
    PyObject *a = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return a;
}

static int add_type(PyObject *m, const char *name, PyTypeObject *type)
{
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__accel(void)
{
    struct { PyObject **at; const char *s; } names[] = {
        {&pba_s_closed, "closed"}, {&pba_s_dispatch, "dispatch"},
        {&pba_s_deliver, "deliver"}, {&pba_s_on_output, "on_output"},
        {&pba_s_resume, "resume"}, {&pba_s_from_ring, "from_ring"},
        {&pba_s_send_large, "send_large"}, {&pba_s_output, "output"},
        {&pba_s_control, "control"}, {&pba_s_log_exception, "log_exception"},
        {&pba_s_run_coroutine, "run_coroutine"}, {&pba_s_control_done, "control_done"},
        {&pba_s_control_failed, "control_failed"}, {&pba_s_took, "took"},
        {&pba_s_bad_frames, "bad_frames"}, {&pba_s_push, "push"}, {&pba_s_close, "close"},
        {&pba_s_rearm, "rearm"}, {&pba_s_reading, "reading"}, {&pba_s_writing, "writing"},
        {&pba_s_watch, "watch"}, {&pba_s_lock, "lock"}, {&pba_s_deadline, "deadline"},
        {&pba_s_acquire, "acquire"}, {&pba_s_release, "release"},
        {&pba_s_queued_py, "queued_py"}, {&pba_s_b, "_b"}, {&pba_s_send, "send"},
        {&pba_s_output_py, "output_py"}, {&pba_s_outputv_py, "outputv_py"},
        {&pba_s_call, "call"}, {&pba_s_call_done, "call_done"},
        {&pba_s_call_failed, "call_failed"}, {&pba_s_none_atom, "none_atom"},
        {&pba_s_c, "_c"}, {&pba_s_output_term_py, "output_term_py"},
        {&pba_s_flush_py, "flush_py"}, {&pba_s_on_readable_py, "on_readable_py"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].at = PyUnicode_InternFromString(names[i].s)) == NULL)
            return NULL;
    if ((pba_ProtocolError = import_attr("pybridge._errors", "ProtocolError")) == NULL ||
        (pba_StructError = import_attr("struct", "error")) == NULL || pba_conn_ready() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&accel_module);
    if (m == NULL)
        return NULL;
    if (add_type(m, "Lock", &pba_LockType) < 0 || add_type(m, "Reader", &pba_ReaderType) < 0 ||
        add_type(m, "Writer", &pba_WriterType) < 0 || add_type(m, "Lent", &pba_LentType) < 0 ||
        add_type(m, "ConnCore", &pba_ConnType) < 0 || add_type(m, "PortCore", &pba_PortType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
