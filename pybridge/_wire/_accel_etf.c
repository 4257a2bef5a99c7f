/* pybridge._wire._accel's encoder of plain terms (issue 14): the external term format of a
 * term made only of exact tuples, Atoms (whose encoding pybridge._encode has cached), ints
 * of 32 bits, finite floats, bytes, str, bool, None and the empty list, byte for byte what
 * pybridge._encode.encode writes for it (tests/python/test_accel_conn.py compares them).
 * Any other term (a pid, a map, a big int, a non-empty list, a subclass, ...) is not plain:
 * the caller hands it to the Python encoder, which also raises the errors. Atoms are
 * looked up in _encode's own cache (_ATOM_ETF), so the choice between ATOM_EXT and UTF-8
 * atoms (use_latin1_atoms) stays the Python encoder's; an atom it has not cached yet is
 * not plain either. encode_plain(term, none_atom) is this from Python, for the tests. */
#include "_accel.h"

#include <math.h>
#include <string.h>

#define DEPTH 64                /* tuples nested deeper are left to the Python encoder */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
    char small[256];
} Buf;

static PyObject *atom_type, *atom_etf;      /* _types.Atom, _encode._ATOM_ETF */
static PyObject *s_name, *s_true, *s_false;

static int ready(void)
{
    if (atom_etf != NULL)
        return 0;
    PyObject *types = PyImport_ImportModule("pybridge._types");
    PyObject *enc = types ? PyImport_ImportModule("pybridge._encode") : NULL;
    if (enc != NULL) {
        atom_type = PyObject_GetAttrString(types, "Atom");
        s_name = PyUnicode_InternFromString("name");
        s_true = PyUnicode_InternFromString("true");
        s_false = PyUnicode_InternFromString("false");
        atom_etf = atom_type && s_name && s_true && s_false
                       ? PyObject_GetAttrString(enc, "_ATOM_ETF") : NULL;
    }
    Py_XDECREF(types);
    Py_XDECREF(enc);
    if (atom_etf != NULL && !PyDict_CheckExact(atom_etf)) {
        PyErr_SetString(PyExc_TypeError, "_encode._ATOM_ETF must be a dict");
        Py_CLEAR(atom_etf);
    }
    return atom_etf ? 0 : -1;
}

static int put(Buf *b, const void *data, Py_ssize_t n)
{
    if (b->cap - b->n < n) {
        Py_ssize_t cap = (b->cap + n) * 2;
        char *p = b->p == b->small ? PyMem_Malloc(cap) : PyMem_Realloc(b->p, cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (b->p == b->small)
            memcpy(p, b->small, b->n);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

static int put_tag32(Buf *b, unsigned char tag, uint32_t v)
{
    unsigned char h[5] = {tag};
    pba_put32(h + 1, v);
    return put(b, h, 5);
}

/* the cached encoding of the atom called name: 1, 0 (not cached), -1 */
static int put_atom(Buf *b, PyObject *name)
{
    PyObject *etf = PyDict_GetItemWithError(atom_etf, name);
    if (etf == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_CheckExact(etf))
        return 0;
    return put(b, PyBytes_AS_STRING(etf), PyBytes_GET_SIZE(etf)) < 0 ? -1 : 1;
}

/* 1: t written, 0: t is not plain, -1: an exception */
static int enc(Buf *b, PyObject *t, PyObject *none, int depth)
{
    PyTypeObject *tt = Py_TYPE(t);
    if ((PyObject *)tt == atom_type) {
        PyObject *name = PyObject_GetAttr(t, s_name);
        int rc = name && PyUnicode_CheckExact(name) ? put_atom(b, name) : name ? 0 : -1;
        Py_XDECREF(name);
        return rc;
    }
    if (tt == &PyLong_Type) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(t, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (overflow || v < -2147483648LL || v > 2147483647LL)
            return 0;           /* a bignum: _encode's */
        if (v >= 0 && v <= 255) {
            unsigned char h[2] = {97, (unsigned char)v};
            return put(b, h, 2) < 0 ? -1 : 1;
        }
        return put_tag32(b, 98, (uint32_t)(int32_t)v) < 0 ? -1 : 1;
    }
    if (tt == &PyBytes_Type)
        return put_tag32(b, 109, (uint32_t)PyBytes_GET_SIZE(t)) < 0 ||
               put(b, PyBytes_AS_STRING(t), PyBytes_GET_SIZE(t)) < 0 ? -1 : 1;
    if (tt == &PyTuple_Type) {
        Py_ssize_t n = PyTuple_GET_SIZE(t);
        if (depth >= DEPTH || n > 0xFFFFFFFFLL)
            return 0;
        int rc = n < 256 ? put(b, (unsigned char[]){104, (unsigned char)n}, 2)
                         : put_tag32(b, 105, (uint32_t)n);
        for (Py_ssize_t i = 0; rc >= 0 && i < n; i++)
            if ((rc = enc(b, PyTuple_GET_ITEM(t, i), none, depth + 1)) == 0)
                return 0;
        return rc < 0 ? -1 : 1;
    }
    if (tt == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *raw = PyUnicode_AsUTF8AndSize(t, &n);
        if (raw == NULL) {      /* a lone surrogate: _encode says so */
            PyErr_Clear();
            return 0;
        }
        return put_tag32(b, 109, (uint32_t)n) < 0 || put(b, raw, n) < 0 ? -1 : 1;
    }
    if (t == Py_None)
        return put_atom(b, none);
    if (tt == &PyBool_Type)
        return put_atom(b, t == Py_True ? s_true : s_false);
    if (tt == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(t);
        unsigned char h[9] = {70};
        uint64_t u;
        if (!isfinite(d))
            return 0;
        memcpy(&u, &d, 8);
        pba_put32(h + 1, (uint32_t)(u >> 32));
        pba_put32(h + 5, (uint32_t)u);
        return put(b, h, 9) < 0 ? -1 : 1;
    }
    if (tt == &PyList_Type && PyList_GET_SIZE(t) == 0)
        return put(b, "j", 1) < 0 ? -1 : 1;
    return 0;
}

PyObject *pba_etf_plain(PyObject *term, PyObject *none_atom, Py_ssize_t room)
{
    Buf b = {.p = NULL, .n = 0, .cap = sizeof b.small};
    PyObject *out = NULL;
    b.p = b.small;
    if (room < 0 || room > 16 || ready() < 0 || !PyUnicode_CheckExact(none_atom))
        return NULL;
    memset(b.p, 0, (size_t)room);
    b.n = room;
    int rc = put(&b, "\x83", 1) < 0 ? -1 : 1;
    if (rc == 1) {
        /* encode() makes sure none_atom is an atom even with no None in the term */
        PyObject *cached = PyDict_GetItemWithError(atom_etf, none_atom);
        rc = cached ? enc(&b, term, none_atom, 0) : PyErr_Occurred() ? -1 : 0;
    }
    if (rc == 1)
        out = PyBytes_FromStringAndSize(b.p, b.n);
    if (b.p != b.small)
        PyMem_Free(b.p);
    return out;
}

PyObject *pba_encode_plain(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_plain(term, none_atom)");
        return NULL;
    }
    PyObject *r = pba_etf_plain(args[0], args[1], 0);
    if (r == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return r;
}
