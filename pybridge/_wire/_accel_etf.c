/* pybridge._wire._accel's encoder of plain terms (issue 14): the external term format of a
 * term made only of exact tuples, Atoms (whose encoding pybridge._encode has cached), ints
 * of 32 bits, finite floats, bytes, str, bool, None and the empty list, byte for byte what
 * pybridge._encode.encode writes for it (tests/python/test_accel_conn.py compares them).
 * Any other term (a pid, a map, a big int, a non-empty list, a subclass, ...) is not plain:
 * the caller hands it to the Python encoder, which also raises the errors. Atoms are
 * looked up in _encode's own cache (_ATOM_ETF), so the choice between ATOM_EXT and UTF-8
 * atoms (use_latin1_atoms) stays the Python encoder's; an atom it has not cached yet is
 * not plain either. The decoder is the inverse for the same shapes (ETF to exact tuples,
 * ints, floats, bytes, [] and the atoms _decode's table for none_atom already holds, as
 * Atom, bool or None), else it leaves the bytes to _decode.decode, which raises too.
 * encode_plain(term, none_atom) and decode_plain(data, none_atom) are these from Python,
 * for the tests. */
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
static PyObject *atom_tables;               /* _decode._ATOM_TABLES */
static PyObject *s_name, *s_true, *s_false;

static int ready(void)
{
    if (atom_etf != NULL)
        return 0;
    PyObject *types = PyImport_ImportModule("pybridge._types");
    PyObject *enc = types ? PyImport_ImportModule("pybridge._encode") : NULL;
    PyObject *dec = enc ? PyImport_ImportModule("pybridge._decode") : NULL;
    if (dec != NULL) {
        atom_tables = PyObject_GetAttrString(dec, "_ATOM_TABLES");
        atom_type = PyObject_GetAttrString(types, "Atom");
        s_name = PyUnicode_InternFromString("name");
        s_true = PyUnicode_InternFromString("true");
        s_false = PyUnicode_InternFromString("false");
        atom_etf = atom_type && s_name && s_true && s_false
                       ? PyObject_GetAttrString(enc, "_ATOM_ETF") : NULL;
    }
    Py_XDECREF(types);
    Py_XDECREF(enc);
    Py_XDECREF(dec);
    if (atom_etf != NULL && (!PyDict_CheckExact(atom_etf) || atom_tables == NULL ||
                             !PyDict_CheckExact(atom_tables))) {
        PyErr_SetString(PyExc_TypeError, "the codec's atom caches must be dicts");
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

typedef struct {
    const unsigned char *p;
    Py_ssize_t i, n;
    PyObject *atoms;            /* _decode's table for none_atom: raw name -> term */
} In;

static PyObject *dec(In *in, int depth);

/* the atom of n raw bytes at in->i if the table has it (latin1: ATOM_EXT, ASCII only) */
static PyObject *dec_atom(In *in, Py_ssize_t n, int latin1)
{
    if (in->n - in->i < n)
        return NULL;
    const unsigned char *raw = in->p + in->i;
    for (Py_ssize_t k = 0; latin1 && k < n; k++)
        if (raw[k] >= 128)
            return NULL;        /* _decode converts it to UTF-8 first */
    PyObject *key = PyBytes_FromStringAndSize((const char *)raw, n);
    PyObject *v = key ? PyDict_GetItemWithError(in->atoms, key) : NULL;
    Py_XDECREF(key);
    if (v == NULL)
        return NULL;
    in->i += n;
    Py_INCREF(v);
    return v;
}

static PyObject *dec_tuple(In *in, Py_ssize_t n, int depth)
{
    if (depth >= DEPTH || n > in->n - in->i)
        return NULL;
    PyObject *t = PyTuple_New(n);
    for (Py_ssize_t k = 0; t != NULL && k < n; k++) {
        PyObject *x = dec(in, depth + 1);
        if (x == NULL)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, k, x);
    }
    return t;
}

/* the term at in->i, or NULL: not plain, truncated, or an exception */
static PyObject *dec(In *in, int depth)
{
    const unsigned char *p = in->p;
    Py_ssize_t left = in->n - in->i, i = in->i;
    if (left < 1)
        return NULL;
    switch (p[i]) {
    case 97:
        if (left < 2)
            return NULL;
        in->i += 2;
        return PyLong_FromLong(p[i + 1]);
    case 98:
        if (left < 5)
            return NULL;
        in->i += 5;
        return PyLong_FromLong((int32_t)pba_get32(p + i + 1));
    case 70: {
        if (left < 9)
            return NULL;
        uint64_t u = ((uint64_t)pba_get32(p + i + 1) << 32) | pba_get32(p + i + 5);
        double d;
        memcpy(&d, &u, 8);
        if (!isfinite(d))
            return NULL;
        in->i += 9;
        return PyFloat_FromDouble(d);
    }
    case 109: {
        if (left < 5 || left - 5 < (Py_ssize_t)pba_get32(p + i + 1))
            return NULL;
        Py_ssize_t n = pba_get32(p + i + 1);
        in->i += 5 + n;
        return PyBytes_FromStringAndSize((const char *)p + i + 5, n);
    }
    case 104:
        if (left < 2)
            return NULL;
        in->i += 2;
        return dec_tuple(in, p[i + 1], depth);
    case 105:
        if (left < 5)
            return NULL;
        in->i += 5;
        return dec_tuple(in, pba_get32(p + i + 1), depth);
    case 106:
        in->i += 1;
        return PyList_New(0);
    case 119:
    case 115:
        if (left < 2)
            return NULL;
        in->i += 2;
        return dec_atom(in, p[i + 1], p[i] == 115);
    case 118:
    case 100:
        if (left < 3)
            return NULL;
        in->i += 3;
        return dec_atom(in, (p[i + 1] << 8) | p[i + 2], p[i] == 100);
    default:
        return NULL;
    }
}

PyObject *pba_etf_decode_plain(const unsigned char *data, Py_ssize_t n, PyObject *none_atom)
{
    if (ready() < 0)
        return NULL;
    In in = {.p = data, .i = 1, .n = n};
    in.atoms = PyUnicode_CheckExact(none_atom) ? PyDict_GetItemWithError(atom_tables, none_atom)
                                                 : NULL;
    if (in.atoms == NULL || !PyDict_CheckExact(in.atoms) || n < 2 || data[0] != 131)
        return NULL;
    Py_INCREF(in.atoms);
    PyObject *t = dec(&in, 0);
    Py_DECREF(in.atoms);
    if (t != NULL && in.i != n)
        Py_CLEAR(t);            /* trailing bytes: decode's error */
    return t;
}

PyObject *pba_decode_plain(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_plain(data: bytes, none_atom)");
        return NULL;
    }
    PyObject *r = pba_etf_decode_plain((const unsigned char *)PyBytes_AS_STRING(args[0]),
                                       PyBytes_GET_SIZE(args[0]), args[1]);
    if (r == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return r;
}
