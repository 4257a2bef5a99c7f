/* pybridge._wire._accel.Reader: _wire.reader.PyFrameReader's fill(), drain() and buffered()
 * compiled; a FL_SHM frame goes to the Python subclass's from_ring(), as in PyFrameReader.
 * A callback run from drain() may fill and drain this reader again (an ask): the buffer
 * may move then, so no pointer into it is kept across a call.
 * With `views` set (a zero_copy driver), output bodies go out as read-only memoryviews of
 * the buffer, released once the sink returns; the buffer then belongs to a Lent object the
 * views hold, and while any view is still out (kept past its callback, or derived from
 * one), the reader never moves, reuses or frees that memory: it starts a fresh buffer. */
#include "_accel.h"

#include <errno.h>
#include <string.h>
#include <structmember.h>
#include <unistd.h>

#define KEEP_BUF (1 << 20)      /* an empty buffer larger than this is given back */

typedef struct {
    PyObject_HEAD
    int fd;
    Py_ssize_t max_frame;
    PyObject *rbuf;             /* the read buffer every port shares: read, then copied */
    Py_buffer rview;
    PyObject *rings, *writer;
    unsigned char *buf;         /* bytes read and not handed out: [pos, end) */
    Py_ssize_t cap, pos, end;
    unsigned long long fills;   /* reads so far: buf may have moved */
    PyObject *lent;             /* NULL, or the Lent that owns buf: views of it went out */
    char views;                 /* output bodies as memoryviews, not bytes */
} Reader;

/* The owner of a buffer whose views went out: each memoryview made of it holds it, and
 * sees [lo, hi) as it was when the view was made (PyMemoryView_FromObject). */
typedef struct {
    PyObject_HEAD
    unsigned char *ptr;
    Py_ssize_t lo, hi;
} Lent;

static int Lent_getbuffer(Lent *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->ptr + self->lo, self->hi - self->lo,
                             1, flags);
}

static void Lent_dealloc(Lent *self)
{
    PyMem_Free(self->ptr);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs Lent_as_buffer = {(getbufferproc)Lent_getbuffer, NULL};

PyTypeObject pba_LentType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pybridge._wire._accel.Lent",
    .tp_basicsize = sizeof(Lent),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A reader's buffer whose views went out to a zero_copy driver's callback.",
    .tp_dealloc = (destructor)Lent_dealloc,
    .tp_as_buffer = &Lent_as_buffer,
};

/* buf [from, to) as a read-only memoryview, buf given to a Lent first if it is not yet */
static PyObject *lend(Reader *self, Py_ssize_t from, Py_ssize_t to)
{
    if (self->lent == NULL) {
        Lent *l = PyObject_New(Lent, &pba_LentType);
        if (l == NULL)
            return NULL;
        l->ptr = self->buf;
        self->lent = (PyObject *)l;
    }
    ((Lent *)self->lent)->lo = from;
    ((Lent *)self->lent)->hi = to;
    return PyMemoryView_FromObject(self->lent);
}

/* A view lent to a callback is over: released (a ValueError for whoever uses it later). A
 * view something still exports (a pickle.PickleBuffer of it) cannot be: it stays valid, as do
 * views derived from it, and the buffer is theirs (make_room). The error in flight, if any,
 * is kept. */
static void give_back(PyObject *view)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallMethod(view, "release", NULL);
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    Py_DECREF(view);
    PyErr_Restore(type, value, tb);
}

/* buf back from its Lent when no view of it is left; else a fresh buf for the reader, with
 * the bytes not yet handed out, and the old one left to the views (freed with the last) */
static int take_back(Reader *self)
{
    Lent *l = (Lent *)self->lent;
    if (Py_REFCNT(l) == 1) {
        l->ptr = NULL;
    } else {
        Py_ssize_t n = self->end - self->pos, cap = n < 4096 ? 4096 : n;
        unsigned char *buf = PyMem_Malloc(cap);
        if (buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(buf, self->buf + self->pos, (size_t)n);
        self->buf = buf;
        self->cap = cap;
        self->pos = 0;
        self->end = n;
    }
    Py_CLEAR(self->lent);
    return 0;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"fd", "max_frame", "rbuf", "rings", "writer", NULL};
    PyObject *rbuf, *rings, *writer;
    int fd;
    Py_ssize_t max_frame;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "inOOO:Reader", names, &fd, &max_frame, &rbuf,
                                     &rings, &writer))
        return -1;
    if (self->rbuf != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Reader initialised twice");
        return -1;
    }
    if (PyObject_GetBuffer(rbuf, &self->rview, PyBUF_WRITABLE) < 0)
        return -1;
    self->fd = fd;
    self->max_frame = max_frame;
    Py_INCREF(rbuf);
    self->rbuf = rbuf;
    Py_INCREF(rings);
    Py_XSETREF(self->rings, rings);
    Py_INCREF(writer);
    Py_XSETREF(self->writer, writer);
    return 0;
}

static int Reader_traverse(Reader *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rings);
    Py_VISIT(self->writer);
    return 0;
}

static int Reader_clear(Reader *self)
{
    Py_CLEAR(self->rings);
    Py_CLEAR(self->writer);
    return 0;
}

static void Reader_dealloc(Reader *self)
{
    PyObject_GC_UnTrack(self);
    Reader_clear(self);
    if (self->rbuf != NULL) {
        PyBuffer_Release(&self->rview);
        Py_CLEAR(self->rbuf);
    }
    if (self->lent != NULL)
        Py_CLEAR(self->lent);           /* buf is its to free */
    else
        PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* room for n more bytes after end, moving what is left to the front when that frees enough */
static int make_room(Reader *self, Py_ssize_t n)
{
    if (self->lent != NULL && take_back(self) < 0)
        return -1;
    if (self->pos == self->end) {
        self->pos = self->end = 0;
        if (self->cap > KEEP_BUF && n <= KEEP_BUF) {
            PyMem_Free(self->buf);
            self->buf = NULL;
            self->cap = 0;
        }
    } else if (self->pos && self->pos >= self->end / 2) {
        memmove(self->buf, self->buf + self->pos, self->end - self->pos);
        self->end -= self->pos;
        self->pos = 0;
    }
    if (self->cap - self->end >= n)
        return 0;
    Py_ssize_t cap = self->cap * 2 > self->end + n ? self->cap * 2 : self->end + n;
    unsigned char *buf = PyMem_Realloc(self->buf, cap < 4096 ? 4096 : cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap < 4096 ? 4096 : cap;
    return 0;
}

/* fill(): read what the descriptor has: False at EOF, None if nothing now */
static PyObject *Reader_fill(Reader *self, PyObject *unused)
{
    ssize_t n;
    if (self->rbuf == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Reader not initialised");
        return NULL;
    }
    for (;;) {
        /* the descriptor is non-blocking: the read holds the GIL for no longer than a copy */
        n = read(self->fd, self->rview.buf, (size_t)self->rview.len);
        if (n >= 0)
            break;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            Py_RETURN_NONE;
        if (errno != EINTR)
            Py_RETURN_FALSE;
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    if (n == 0)
        Py_RETURN_FALSE;
    if (make_room(self, n) < 0)
        return NULL;
    memcpy(self->buf + self->end, self->rview.buf, (size_t)n);
    self->end += n;
    self->fills++;
    Py_RETURN_TRUE;
}

static PyObject *Reader_buffered(Reader *self, PyObject *unused)
{
    return PyBool_FromLong(self->pos < self->end);
}

static PyObject *bytes_at(Reader *self, Py_ssize_t from, Py_ssize_t to)
{
    return PyBytes_FromStringAndSize((const char *)self->buf + from, to - from);
}

/* one frame to the sink (the compiled port's own work if conn, from_ring if FL_SHM); a new
 * reference to what it returned, or NULL */
static PyObject *hand_out(Reader *self, PyObject *sink, int conn, int op, int fl,
                          uint32_t rid, Py_ssize_t start, Py_ssize_t stop)
{
    PyObject *body, *r, *args[6];
    Py_ssize_t n = stop - start;
    if (!(fl & FL_SHM) && conn &&
        pba_conn_frame(sink, op, fl, rid, self->buf + start, n, &r))
        return r;
    if (!(fl & FL_SHM) && op == PY_OUTPUT && !rid) {
        /* one piece: deliver([piece]), one copy (views: none, released after); several:
         * on_output(body) */
        PyObject *name = pba_s_on_output, *arg, *view = NULL;
        if (n >= 4 && pba_get32(self->buf + start) == (uint32_t)(n - 4)) {
            PyObject *piece = self->views ? lend(self, start + 4, stop)
                                          : bytes_at(self, start + 4, stop);
            view = self->views ? piece : NULL;
            Py_XINCREF(view);
            name = pba_s_deliver;
            arg = piece ? PyList_New(1) : NULL;
            if (arg == NULL)
                Py_XDECREF(piece);
            else
                PyList_SET_ITEM(arg, 0, piece);
        } else {
            arg = self->views ? lend(self, start, stop) : bytes_at(self, start, stop);
            view = self->views ? arg : NULL;
            Py_XINCREF(view);
        }
        if (arg == NULL) {
            Py_XDECREF(view);
            return NULL;
        }
        args[0] = sink;
        args[1] = arg;
        r = PyObject_VectorcallMethod(name, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(arg);
        if (view != NULL)
            give_back(view);
        return r;
    }
    PyObject *o = PyLong_FromLong(op), *f = PyLong_FromLong(fl),
             *i = PyLong_FromUnsignedLong(rid);
    body = bytes_at(self, start, stop);
    if (o == NULL || f == NULL || i == NULL || body == NULL) {
        r = NULL;
    } else {
        /* from_ring(reader, sink, op, fl, rid, ref) or sink.dispatch(op, fl, rid, body) */
        int shm = (fl & FL_SHM) != 0;
        args[0] = (PyObject *)self;
        args[1] = sink; args[2] = o; args[3] = f; args[4] = i; args[5] = body;
        r = PyObject_VectorcallMethod(shm ? pba_s_from_ring : pba_s_dispatch, args + !shm,
                                      shm ? 6 : (5 | PY_VECTORCALL_ARGUMENTS_OFFSET), NULL);
    }
    Py_XDECREF(o);
    Py_XDECREF(f);
    Py_XDECREF(i);
    Py_XDECREF(body);
    return r;
}

/* drain(sink): every whole frame to sink, in order, while it is open. ProtocolError: a frame
 * length the protocol does not allow (the frames before it are handed out). */
static PyObject *Reader_drain(Reader *self, PyObject *sink)
{
    Py_ssize_t off = self->pos, end = self->end;
    int conn = PyObject_TypeCheck(sink, &pba_ConnType);
    while (end - off >= 4) {
        int shut;
        if (conn) {
            shut = pba_conn_closed(sink);
        } else {
            PyObject *closed = PyObject_GetAttr(sink, pba_s_closed);
            shut = closed ? PyObject_IsTrue(closed) : -1;
            Py_XDECREF(closed);
        }
        if (shut < 0)
            return NULL;
        if (shut)
            break;
        const unsigned char *b = self->buf + off;
        uint32_t n = pba_get32(b);
        if (n < 6 || n > (uint64_t)self->max_frame)
            return PyErr_Format(pba_ProtocolError, "bad frame length %lu", (unsigned long)n);
        if (end - off - 4 < (Py_ssize_t)n)
            break;
        int op = b[4], fl = b[5];
        uint32_t rid = pba_get32(b + 6);
        Py_ssize_t start = off + HDR_LEN;
        off = self->pos = off + 4 + n;
        unsigned long long fills = self->fills;
        PyObject *r = hand_out(self, sink, conn, op, fl, rid, start, off);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        if (self->fills != fills || self->pos != off) {
            /* the handler drained this reader itself: what it set aside first */
            PyObject *args[1] = {sink};
            r = PyObject_VectorcallMethod(pba_s_resume, args,
                                          1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
            off = self->pos;
            end = self->end;
        }
    }
    Py_RETURN_NONE;
}

PyObject *pba_reader_fill(PyObject *reader)
{
    return Reader_fill((Reader *)reader, NULL);
}

PyObject *pba_reader_drain(PyObject *reader, PyObject *sink)
{
    return Reader_drain((Reader *)reader, sink);
}

static PyMethodDef Reader_methods[] = {
    {"fill", (PyCFunction)Reader_fill, METH_NOARGS,
     "Read what the descriptor has: False at EOF, None if nothing now."},
    {"drain", (PyCFunction)Reader_drain, METH_O,
     "Every whole frame to sink, in order, while it is open."},
    {"buffered", (PyCFunction)Reader_buffered, METH_NOARGS,
     "Bytes are here that drain() has not handed out."},
    {NULL, NULL, 0, NULL}
};

static PyMemberDef Reader_members[] = {
    {"fd", T_INT, offsetof(Reader, fd), READONLY, NULL},
    {"max_frame", T_PYSSIZET, offsetof(Reader, max_frame), READONLY, NULL},
    {"rings", T_OBJECT, offsetof(Reader, rings), READONLY, NULL},
    {"writer", T_OBJECT, offsetof(Reader, writer), READONLY, NULL},
    {"pos", T_PYSSIZET, offsetof(Reader, pos), READONLY, NULL},
    {"fills", T_ULONGLONG, offsetof(Reader, fills), READONLY, NULL},
    {"views", T_BOOL, offsetof(Reader, views), 0, NULL},
    {NULL, 0, 0, 0, NULL}
};

PyTypeObject pba_ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pybridge._wire._accel.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The bytes read from one descriptor and not yet handed out (compiled).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_traverse = (traverseproc)Reader_traverse,
    .tp_clear = (inquiry)Reader_clear,
    .tp_methods = Reader_methods,
    .tp_members = Reader_members,
};
