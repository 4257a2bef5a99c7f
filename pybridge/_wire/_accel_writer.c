/* pybridge._wire._accel.Writer: the base class of the compiled FrameWriter. Its send() makes
 * a small frame (header and body in one bytes) and queues it under the writer's Lock, as
 * PyFrameWriter.send does, without a Python call; a larger body goes to the Python
 * send_large(). write_out() writes the queue with writev, without joining it first. The
 * state is the members PyFrameWriter's Python methods read and set (out, outlen, ...). */
#include "_accel.h"

#include <errno.h>
#include <structmember.h>
#include <sys/uio.h>

#define SMALL PBA_SMALL
#define OUT_FLUSH (64 << 10)    /* writer.py's OUT_FLUSH */
#define IOV_CHUNK 1024          /* queued pieces per writev (IOV_MAX) */
#define VIEWS 16                /* pieces other than bytes per writev */

typedef struct {
    PyObject_HEAD
    int fd;
    Py_ssize_t max_frame;
    PyObject *rings, *queued, *out, *lock;
    Py_ssize_t outlen, write_at;
    char closed;
} Writer;

static int Writer_traverse(Writer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rings);
    Py_VISIT(self->queued);
    Py_VISIT(self->out);
    Py_VISIT(self->lock);
    return 0;
}

static int Writer_clear(Writer *self)
{
    Py_CLEAR(self->rings);
    Py_CLEAR(self->queued);
    Py_CLEAR(self->out);
    Py_CLEAR(self->lock);
    return 0;
}

static void Writer_dealloc(Writer *self)
{
    PyObject_GC_UnTrack(self);
    Writer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static pba_Lock *the_lock(Writer *self)
{
    if (self->lock == NULL || !Py_IS_TYPE(self->lock, &pba_LockType)) {
        PyErr_SetString(PyExc_TypeError, "the compiled writer's lock must be an _accel.Lock");
        return NULL;
    }
    return (pba_Lock *)self->lock;
}

static PyObject *out_list(Writer *self)
{
    if (self->out == NULL || !PyList_CheckExact(self->out)) {
        PyErr_SetString(PyExc_TypeError, "the writer's out must be a list");
        return NULL;
    }
    return self->out;
}

/* One writev of the queue's head: as many pieces as it takes in one go, so that a pipe
 * fills up as with one joined write (a write of up to PIPE_BUF bytes is all or nothing).
 * 1: all written, 0: the descriptor took less (or nothing), -1: another error, -2: an
 * exception. Called with the lock held. */
static int write_some(Writer *self, PyObject *out)
{
    struct iovec iov[IOV_CHUNK];
    Py_buffer views[VIEWS];
    int k = 0, nviews = 0, rc;
    Py_ssize_t want = 0, n;
    for (; k < IOV_CHUNK && k < PyList_GET_SIZE(out); k++) {
        PyObject *item = PyList_GET_ITEM(out, k);
        if (PyBytes_CheckExact(item)) {
            iov[k].iov_base = PyBytes_AS_STRING(item);
            iov[k].iov_len = (size_t)PyBytes_GET_SIZE(item);
        } else {
            if (nviews == VIEWS)
                break;
            if (PyObject_GetBuffer(item, &views[nviews], PyBUF_SIMPLE) < 0) {
                rc = -2;
                goto done;
            }
            iov[k].iov_base = views[nviews].buf;
            iov[k].iov_len = (size_t)views[nviews].len;
            nviews++;
        }
        want += (Py_ssize_t)iov[k].iov_len;
    }
    for (;;) {
        if (want >= OUT_FLUSH) {
            /* a large write copies long enough to let other threads run meanwhile */
            Py_BEGIN_ALLOW_THREADS
            n = writev(self->fd, iov, k);
            Py_END_ALLOW_THREADS
        } else {
            n = writev(self->fd, iov, k);
        }
        if (n >= 0 || errno != EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            rc = -2;
            goto done;
        }
    }
    if (n < 0) {
        rc = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        goto done;
    }
    self->outlen -= n;
    Py_ssize_t left = n;
    int whole = 0;
    while (whole < k && left >= (Py_ssize_t)iov[whole].iov_len)
        left -= (Py_ssize_t)iov[whole++].iov_len;
    rc = n == want;
    if (left) {
        /* an unsent tail: a view of the piece, as PyFrameWriter.write_out keeps it */
        PyObject *mv = PyMemoryView_FromObject(PyList_GET_ITEM(out, whole));
        PyObject *tail = mv ? PySequence_GetSlice(mv, left, PY_SSIZE_T_MAX) : NULL;
        Py_XDECREF(mv);
        if (tail == NULL || PyList_SetItem(out, whole, tail) < 0)
            rc = -2;
    }
    if (whole && PyList_SetSlice(out, 0, whole, NULL) < 0)
        rc = -2;
done:
    while (nviews)
        PyBuffer_Release(&views[--nviews]);
    return rc;
}

/* write_out(): write what the descriptor takes now; False: the driver's end is gone */
static PyObject *Writer_write_out(Writer *self, PyObject *unused)
{
    pba_Lock *lock = the_lock(self);
    PyObject *out = out_list(self);
    int rc = 1;
    if (lock == NULL || out == NULL || pba_lock_take(lock) < 0)
        return NULL;
    while (PyList_GET_SIZE(out) && rc == 1)
        rc = write_some(self, out);
    if (rc >= 0)
        self->write_at = self->outlen + OUT_FLUSH;
    pba_lock_give(lock);
    if (rc == -2)
        return NULL;
    return PyBool_FromLong(rc >= 0);
}

static int int_arg(PyObject *o, unsigned long max, unsigned long *v)
{
    if (o == NULL)
        return 0;
    *v = PyLong_AsUnsignedLong(o);
    if (*v == (unsigned long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError) ||
            PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(pba_StructError, "required argument is not an integer in range");
        }
        return -1;
    }
    if (*v > max) {
        PyErr_Format(pba_StructError, "argument out of range: %lu", *v);
        return -1;
    }
    return 0;
}

/* a body that is not small: PyFrameWriter.send_large(op, body, fl, rid) */
static PyObject *send_large(Writer *self, PyObject **a)
{
    PyObject *zero = PyLong_FromLong(0), *empty = PyBytes_FromStringAndSize(NULL, 0), *r = NULL;
    if (zero != NULL && empty != NULL) {
        PyObject *call[5] = {(PyObject *)self, a[0], a[1] ? a[1] : empty, a[2] ? a[2] : zero,
                             a[3] ? a[3] : zero};
        r = PyObject_VectorcallMethod(pba_s_send_large, call,
                                      5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_XDECREF(zero);
    Py_XDECREF(empty);
    return r;
}

/* a frame of a small body (n < SMALL, n + 6 <= max_frame) queued under the lock; written at
 * once past write_at; `queued` told when it is the first one waiting. 0, or -1: an exception */
static int queue_small(Writer *self, int op, int fl, uint32_t rid, const char *data,
                       Py_ssize_t n)
{
    pba_Lock *lock = the_lock(self);
    PyObject *out = out_list(self);
    if (lock == NULL || out == NULL || pba_lock_take(lock) < 0)
        return -1;
    int first = 0, over = 0, failed = 0;
    if (!self->closed) {
        PyObject *frame = PyBytes_FromStringAndSize(NULL, HDR_LEN + n);
        if (frame == NULL) {
            failed = 1;
        } else {
            unsigned char *p = (unsigned char *)PyBytes_AS_STRING(frame);
            pba_put32(p, (uint32_t)(n + 6));
            p[4] = (unsigned char)op;
            p[5] = (unsigned char)fl;
            pba_put32(p + 6, rid);
            memcpy(p + HDR_LEN, data, (size_t)n);
            first = PyList_GET_SIZE(out) == 0;
            failed = PyList_Append(out, frame) < 0;
            Py_DECREF(frame);
            if (!failed) {
                self->outlen += HDR_LEN + n;
                over = self->outlen >= self->write_at;
            }
        }
    }
    pba_lock_give(lock);
    if (failed)
        return -1;
    if (over) {
        PyObject *r = Writer_write_out(self, NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    if (first) {
        if (self->queued == NULL) {
            PyErr_SetString(PyExc_AttributeError, "the writer has no queued callback");
            return -1;
        }
        PyObject *r = PyObject_CallNoArgs(self->queued);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

int pba_writer_send(PyObject *w, int op, int fl, uint32_t rid, PyObject *body)
{
    Writer *self = (Writer *)w;
    Py_ssize_t n = body ? PyBytes_GET_SIZE(body) : 0;
    if (n >= SMALL || n + 6 > self->max_frame) {
        PyObject *o = PyLong_FromLong(op), *f = PyLong_FromLong(fl),
                 *i = PyLong_FromUnsignedLong(rid), *r = NULL;
        PyObject *a[4] = {o, body, f, i};
        if (o != NULL && f != NULL && i != NULL)
            r = send_large(self, a);
        Py_XDECREF(o);
        Py_XDECREF(f);
        Py_XDECREF(i);
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    return queue_small(self, op, fl, rid, body ? PyBytes_AS_STRING(body) : "", n);
}

int pba_writer_queue(PyObject *w, int op, int fl, uint32_t rid, const char *data, Py_ssize_t n)
{
    Writer *self = (Writer *)w;
    if (n >= SMALL || n + 6 > self->max_frame)
        return -2;
    return queue_small(self, op, fl, rid, data, n);
}

int pba_writer_state(PyObject *w, Py_ssize_t *outlen, int *waiting)
{
    Writer *self = (Writer *)w;
    if (self->out == NULL || !PyList_CheckExact(self->out))
        return -1;
    *outlen = self->outlen;
    *waiting = PyList_GET_SIZE(self->out) > 0;
    return 0;
}

PyObject *pba_writer_write_out(PyObject *w)
{
    return Writer_write_out((Writer *)w, NULL);
}

/* send(op, body=b"", fl=0, rid=0): one frame queued (PyFrameWriter.send) */
static PyObject *Writer_send(Writer *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *names[] = {"op", "body", "fl", "rid"};
    PyObject *a[4] = {NULL, NULL, NULL, NULL};
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "send() takes at most 4 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        a[i] = args[i];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int j = 0;
        while (j < 4 && PyUnicode_CompareWithASCIIString(name, names[j]) != 0)
            j++;
        if (j == 4 || a[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "send() got an unexpected or repeated argument %R",
                         name);
            return NULL;
        }
        a[j] = args[nargs + i];
    }
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "send() missing its op");
        return NULL;
    }
    unsigned long op, fl = 0, rid = 0;
    if (int_arg(a[0], 255, &op) < 0 || int_arg(a[2], 255, &fl) < 0 ||
        int_arg(a[3], 0xFFFFFFFFUL, &rid) < 0)
        return NULL;
    Py_buffer view = {0};
    const char *data = "";
    Py_ssize_t n = 0;
    if (a[1] != NULL && PyBytes_CheckExact(a[1])) {
        data = PyBytes_AS_STRING(a[1]);
        n = PyBytes_GET_SIZE(a[1]);
    } else if (a[1] != NULL) {
        if (PyObject_GetBuffer(a[1], &view, PyBUF_SIMPLE) < 0)
            return NULL;
        data = view.buf;
        n = view.len;
    }
    if (n >= SMALL || n + 6 > self->max_frame) {
        PyBuffer_Release(&view);
        return send_large(self, a);
    }
    int r = queue_small(self, (int)op, (int)fl, (uint32_t)rid, data, n);
    PyBuffer_Release(&view);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef Writer_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Writer_send, METH_FASTCALL | METH_KEYWORDS,
     "send(op, body=b'', fl=0, rid=0): one frame, queued."},
    {"write_out", (PyCFunction)Writer_write_out, METH_NOARGS,
     "Write what the descriptor takes now. False: the driver's end is gone."},
    {NULL, NULL, 0, NULL}
};

static PyMemberDef Writer_members[] = {
    {"fd", T_INT, offsetof(Writer, fd), 0, NULL},
    {"max_frame", T_PYSSIZET, offsetof(Writer, max_frame), 0, NULL},
    {"rings", T_OBJECT_EX, offsetof(Writer, rings), 0, NULL},
    {"queued", T_OBJECT_EX, offsetof(Writer, queued), 0, NULL},
    {"out", T_OBJECT_EX, offsetof(Writer, out), 0, NULL},
    {"lock", T_OBJECT_EX, offsetof(Writer, lock), 0, NULL},
    {"outlen", T_PYSSIZET, offsetof(Writer, outlen), 0, NULL},
    {"write_at", T_PYSSIZET, offsetof(Writer, write_at), 0, NULL},
    {"closed", T_BOOL, offsetof(Writer, closed), 0, NULL},
    {NULL, 0, 0, 0, NULL}
};

PyTypeObject pba_WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pybridge._wire._accel.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "send() and write_out() of the one frame writer, compiled.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_traverse = (traverseproc)Writer_traverse,
    .tp_clear = (inquiry)Writer_clear,
    .tp_methods = Writer_methods,
    .tp_members = Writer_members,
};
