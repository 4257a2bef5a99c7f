/* pybridge._wire._accel.PortCore: the C base of _api.cport.CPort, whose output(data),
 * outputv(hdr, iov, skip) and output_term(term) frame the shapes a driver sends most in C
 * (issue 14): output of a bytes, and outputv of one bytes piece without header or skip (an
 * echo's), each of a body under SMALL, queued straight into the port's compiled writer;
 * output_term of a plain term (_accel_etf.c) from the thread that owns the port. Every
 * other shape or thread, and a port whose backend's send is not that writer's, goes to
 * Port's own method (output_py, outputv_py, output_term_py), so the bytes on the wire are
 * Port's in every case. PortCore has no state of its own: the handle's backend is Port's
 * `_b`, its port CPort's `_c`. */
#include "_accel.h"

#define DRV_OUTPUT 0x82
#define DRV_OUTPUTV 0x87
#define DRV_OUTPUT_TERM 0x88
#define T_EXT 0x01

static PyTypeObject *seen_writer;   /* pba_is */

/* the compiled writer behind self._b.send, or NULL (no exception): Port's method must send */
static PyObject *writer_of(PyObject *self)
{
    PyObject *b = PyObject_GetAttr(self, pba_s_b), *send, *w = NULL;
    send = b ? PyObject_GetAttr(b, pba_s_send) : NULL;
    if (send != NULL && PyCFunction_Check(send)) {
        w = PyCFunction_GET_SELF(send);
        if (w == NULL || !pba_is(w, &pba_WriterType, &seen_writer))
            w = NULL;
        else
            Py_INCREF(w);
    }
    Py_XDECREF(send);
    Py_XDECREF(b);
    PyErr_Clear();
    return w;
}

/* self.name(*args, **kw): Port's own method */
static PyObject *python_method(PyObject *self, PyObject *name, PyObject *const *args,
                               size_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *all[8];
    if (nargs + nkw > 7) {
        PyErr_SetString(PyExc_TypeError, "too many arguments");
        return NULL;
    }
    all[0] = self;
    for (Py_ssize_t i = 0; i < (Py_ssize_t)nargs + nkw; i++)
        all[i + 1] = args[i];
    return PyObject_VectorcallMethod(name, all, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     kwnames);
}

/* output(data): driver_output */
static PyObject *PortCore_output(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    if (nargs == 1 && kwnames == NULL && PyBytes_CheckExact(args[0]) &&
        PyBytes_GET_SIZE(args[0]) < PBA_SMALL) {
        PyObject *w = writer_of(self);
        if (w != NULL) {
            int rc = pba_writer_queue(w, DRV_OUTPUT, 0, 0, PyBytes_AS_STRING(args[0]),
                                      PyBytes_GET_SIZE(args[0]));
            Py_DECREF(w);
            if (rc == -1)
                return NULL;
            if (rc == 0)
                Py_RETURN_NONE;
        }
    }
    return python_method(self, pba_s_output_py, args, (size_t)nargs, kwnames);
}

/* the one piece of outputv(b"", [piece]) / outputv(b"", [piece], 0), or NULL */
static PyObject *one_piece(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames != NULL || nargs < 2 || nargs > 3)
        return NULL;
    if (!PyBytes_CheckExact(args[0]) || PyBytes_GET_SIZE(args[0]) != 0)
        return NULL;
    if (nargs == 3) {
        int overflow;
        if (!PyLong_CheckExact(args[2]) || PyLong_AsLongAndOverflow(args[2], &overflow) != 0 ||
            overflow)
            return NULL;
    }
    PyObject *iov = args[1], *piece;
    if (PyList_CheckExact(iov) && PyList_GET_SIZE(iov) == 1)
        piece = PyList_GET_ITEM(iov, 0);
    else if (PyTuple_CheckExact(iov) && PyTuple_GET_SIZE(iov) == 1)
        piece = PyTuple_GET_ITEM(iov, 0);
    else
        return NULL;
    return PyBytes_CheckExact(piece) && PyBytes_GET_SIZE(piece) + 8 < PBA_SMALL ? piece : NULL;
}

/* outputv(hdr, iov, skip=0): driver_outputv */
static PyObject *PortCore_outputv(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    PyObject *piece = one_piece(args, nargs, kwnames);
    if (piece != NULL) {
        PyObject *w = writer_of(self);
        if (w != NULL) {
            /* Port.outputv's body: no header (u32 0), the piece's length, the piece */
            unsigned char body[PBA_SMALL];
            Py_ssize_t n = PyBytes_GET_SIZE(piece);
            pba_put32(body, 0);
            pba_put32(body + 4, (uint32_t)n);
            memcpy(body + 8, PyBytes_AS_STRING(piece), (size_t)n);
            int rc = pba_writer_queue(w, DRV_OUTPUTV, 0, 0, (const char *)body, n + 8);
            Py_DECREF(w);
            if (rc == -1)
                return NULL;
            if (rc == 0)
                Py_RETURN_NONE;
        }
    }
    return python_method(self, pba_s_outputv_py, args, (size_t)nargs, kwnames);
}

/* output_term(term): erl_drv_output_term of a plain term (_accel_etf.c) from the thread
 * that owns the port: Conn.output_term's T_EXT program, framed here */
static PyObject *PortCore_output_term(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames)
{
    if (nargs == 1 && kwnames == NULL) {
        PyObject *conn = PyObject_GetAttr(self, pba_s_c), *body = NULL;
        PyObject *w = conn ? pba_conn_writer(conn) : NULL;
        PyObject *none = w ? PyObject_GetAttr(conn, pba_s_none_atom) : NULL;
        if (none != NULL && (body = pba_etf_plain(args[0], none, 5)) != NULL) {
            unsigned char *p = (unsigned char *)PyBytes_AS_STRING(body);
            p[0] = T_EXT;
            pba_put32(p + 1, (uint32_t)(PyBytes_GET_SIZE(body) - 5));
            Py_INCREF(w);
        }
        Py_XDECREF(none);
        Py_XDECREF(conn);
        if (body != NULL) {
            int rc = pba_writer_send(w, DRV_OUTPUT_TERM, 0, 0, body);
            Py_DECREF(body);
            Py_DECREF(w);
            if (rc < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();          /* no _c yet: Port's own */
    }
    return python_method(self, pba_s_output_term_py, args, (size_t)nargs, kwnames);
}

static PyMethodDef PortCore_methods[] = {
    {"output", (PyCFunction)(void (*)(void))PortCore_output, METH_FASTCALL | METH_KEYWORDS,
     "driver_output: Port.output, a small bytes framed here."},
    {"outputv", (PyCFunction)(void (*)(void))PortCore_outputv, METH_FASTCALL | METH_KEYWORDS,
     "driver_outputv: Port.outputv, one small bytes piece framed here."},
    {"output_term", (PyCFunction)(void (*)(void))PortCore_output_term,
     METH_FASTCALL | METH_KEYWORDS, "erl_drv_output_term: Port.output_term, a plain term here."},
    {NULL, NULL, 0, NULL}
};

PyTypeObject pba_PortType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pybridge._wire._accel.PortCore",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Port.output and Port.outputv of their common shapes, compiled.",
    .tp_new = PyType_GenericNew,
    .tp_methods = PortCore_methods,
};
