/*
 * The in-process baseline of `make bench`: a NIF that embeds CPython in the VM and calls
 * the functions of bench/inproc.py, taking the GIL for each call, as in-process bridges
 * (erlang_python, Pythonx) do. The NIFs run on dirty CPU schedulers, as erlang_python's
 * calls do; the *_normal ones run the same code on a normal scheduler, for comparison.
 *
 * Terms become Python objects and back the way erlang_python converts them, except that
 * binaries stay bytes (erlang_python decodes them to str) and str goes back to an atom, so
 * {ok, 42, <<"hello">>} makes the round trip unchanged: atom <-> str, integer <-> int,
 * float <-> float, binary <-> bytes, tuple <-> tuple, list <-> list.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <string.h>
#include <erl_nif.h>

static PyObject *control_fn, *call_fn, *terms_fn, *send_fn;
static PyInterpreterState *interp;

/* Each scheduler thread keeps the thread state made on its first call, so a call only takes
 * and gives back the GIL (PyGILState_Ensure/Release would make and free a thread state per
 * call, which costs more than the call itself). */
static __thread PyThreadState *tstate;

static void gil_take(void)
{
    if (!tstate) tstate = PyThreadState_New(interp);
    PyEval_RestoreThread(tstate);
}

static void gil_give(void)
{
    PyEval_SaveThread();
}

/* Where send() delivers: set by terms() for the length of its call, under the GIL. */
static ErlNifEnv *send_env, *msg_env;
static ErlNifPid send_to;

static PyObject *to_py(ErlNifEnv *env, ERL_NIF_TERM t)
{
    char atom[256];
    ErlNifSInt64 i;
    double d;
    ErlNifBinary bin;
    const ERL_NIF_TERM *elems;
    int arity;
    unsigned len;
    if (enif_get_atom(env, t, atom, sizeof atom, ERL_NIF_LATIN1) > 0) return PyUnicode_FromString(atom);
    if (enif_get_int64(env, t, &i)) return PyLong_FromLongLong(i);
    if (enif_get_double(env, t, &d)) return PyFloat_FromDouble(d);
    if (enif_inspect_binary(env, t, &bin)) return PyBytes_FromStringAndSize((char *)bin.data, (Py_ssize_t)bin.size);
    if (enif_get_tuple(env, t, &arity, &elems)) {
        PyObject *tup = PyTuple_New(arity);
        for (int k = 0; tup && k < arity; k++) {
            PyObject *e = to_py(env, elems[k]);
            if (!e) { Py_DECREF(tup); return NULL; }
            PyTuple_SET_ITEM(tup, k, e);
        }
        return tup;
    }
    if (enif_get_list_length(env, t, &len)) {
        PyObject *list = PyList_New(len);
        ERL_NIF_TERM head;
        for (unsigned k = 0; list && k < len; k++) {
            PyObject *e;
            enif_get_list_cell(env, t, &head, &t);
            if (!(e = to_py(env, head))) { Py_DECREF(list); return NULL; }
            PyList_SET_ITEM(list, k, e);
        }
        return list;
    }
    PyErr_SetString(PyExc_TypeError, "no Python form for this term");
    return NULL;
}

/* 0 with a Python exception set when obj has no term form. */
static int to_term(ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out)
{
    if (PyUnicode_Check(obj)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
        return s && (*out = enif_make_atom_len(env, s, (size_t)n), 1);
    }
    if (PyLong_Check(obj)) {
        long long v = PyLong_AsLongLong(obj);
        return !(v == -1 && PyErr_Occurred()) && (*out = enif_make_int64(env, v), 1);
    }
    if (PyFloat_Check(obj)) return (*out = enif_make_double(env, PyFloat_AS_DOUBLE(obj)), 1);
    if (PyBytes_Check(obj)) {
        Py_ssize_t n = PyBytes_GET_SIZE(obj);
        unsigned char *p = enif_make_new_binary(env, (size_t)n, out);
        memcpy(p, PyBytes_AS_STRING(obj), (size_t)n);
        return 1;
    }
    if (PyTuple_Check(obj) || PyList_Check(obj)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        ERL_NIF_TERM small[16], *items = n <= 16 ? small : enif_alloc(sizeof(ERL_NIF_TERM) * (size_t)n);
        int ok = 1;
        for (Py_ssize_t k = 0; ok && k < n; k++) ok = to_term(env, PySequence_Fast_GET_ITEM(obj, k), &items[k]);
        if (ok) *out = PyTuple_Check(obj) ? enif_make_tuple_from_array(env, items, (unsigned)n)
                                          : enif_make_list_from_array(env, items, (unsigned)n);
        if (items != small) enif_free(items);
        return ok;
    }
    PyErr_SetString(PyExc_TypeError, "no term form for this object");
    return 0;
}

/* Under the GIL: the Python error as {error, Repr}, cleared. */
static ERL_NIF_TERM py_error(ErlNifEnv *env)
{
    PyObject *type, *value, *tb, *repr;
    ERL_NIF_TERM why = enif_make_atom(env, "unknown");
    PyErr_Fetch(&type, &value, &tb);
    if (value && (repr = PyObject_Repr(value))) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(repr, &n);
        if (s) memcpy(enif_make_new_binary(env, (size_t)n, &why), s, (size_t)n);
        Py_DECREF(repr);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
    return enif_raise_exception(env, enif_make_tuple2(env, enif_make_atom(env, "python"), why));
}

/* control(Binary): the bytes control() of inproc.py returns. */
static ERL_NIF_TERM control_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    ErlNifBinary in;
    ERL_NIF_TERM out;
    PyObject *arg, *r = NULL;
    (void)argc;
    if (!enif_inspect_binary(env, argv[0], &in)) return enif_make_badarg(env);
    gil_take();
    if ((arg = PyBytes_FromStringAndSize((char *)in.data, (Py_ssize_t)in.size))) {
        r = PyObject_CallOneArg(control_fn, arg);
        Py_DECREF(arg);
    }
    if (!r || !PyBytes_Check(r)) {
        if (r && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "control must return bytes");
        Py_XDECREF(r);
        out = py_error(env);
    } else {
        Py_ssize_t n = PyBytes_GET_SIZE(r);
        memcpy(enif_make_new_binary(env, (size_t)n, &out), PyBytes_AS_STRING(r), (size_t)n);
        Py_DECREF(r);
    }
    gil_give();
    return out;
}

/* call(Term): Term as Python objects to call() of inproc.py, its answer back as a term. */
static ERL_NIF_TERM call_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM out;
    PyObject *arg, *r = NULL;
    (void)argc;
    gil_take();
    arg = to_py(env, argv[0]);
    if (arg) {
        r = PyObject_CallOneArg(call_fn, arg);
        Py_DECREF(arg);
    }
    if (!r || !to_term(env, r, &out)) out = py_error(env);
    Py_XDECREF(r);
    gil_give();
    return out;
}

/* send(obj), given to terms(): obj as a term to the process that called terms(N). */
static PyObject *send_py(PyObject *self, PyObject *obj)
{
    ERL_NIF_TERM t;
    (void)self;
    if (!to_term(msg_env, obj, &t)) return NULL;
    if (!enif_send(send_env, &send_to, msg_env, t)) {
        PyErr_SetString(PyExc_RuntimeError, "enif_send failed");
        return NULL;
    }
    enif_clear_env(msg_env);
    Py_RETURN_NONE;
}

static PyMethodDef send_def = {"send", send_py, METH_O, "send a term to the caller of terms()"};

/* terms(N): terms(N, send) of inproc.py, which sends the caller N terms. */
static ERL_NIF_TERM terms_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    int n;
    ERL_NIF_TERM out = enif_make_atom(env, "ok");
    PyObject *r;
    (void)argc;
    if (!enif_get_int(env, argv[0], &n)) return enif_make_badarg(env);
    gil_take();
    send_env = env;
    enif_self(env, &send_to);
    msg_env = enif_alloc_env();
    r = PyObject_CallFunction(terms_fn, "iO", n, send_fn);
    if (!r) out = py_error(env);
    Py_XDECREF(r);
    enif_free_env(msg_env);
    gil_give();
    return out;
}

/* load_info: {PythonExecutable, BenchDir}, both strings. The interpreter is the one of that
 * executable (its prefix, its venv), without signal handlers of its own (the VM keeps its
 * signals). libpython, loaded with this library, is made RTLD_GLOBAL so that extension
 * modules, which do not link it, find its symbols. */
static int load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
    char exe[4096], dir[4096];
    const ERL_NIF_TERM *t;
    int n;
    PyConfig config;
    PyStatus st;
    PyObject *mod, *path, *d;
    (void)priv;
    if (!enif_get_tuple(env, info, &n, &t) || n != 2 ||
        enif_get_string(env, t[0], exe, sizeof exe, ERL_NIF_LATIN1) <= 0 ||
        enif_get_string(env, t[1], dir, sizeof dir, ERL_NIF_LATIN1) <= 0)
        return 1;
    if (!dlopen(PB_LIBPYTHON, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL)) return 2;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    st = PyConfig_SetBytesString(&config, &config.program_name, exe);
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) return 3;
    path = PySys_GetObject("path");
    d = PyUnicode_FromString(dir);
    if (!path || !d || PyList_Insert(path, 0, d) < 0) return 4;
    Py_DECREF(d);
    if (!(mod = PyImport_ImportModule("inproc"))) { PyErr_Print(); return 5; }
    control_fn = PyObject_GetAttrString(mod, "control");
    call_fn = PyObject_GetAttrString(mod, "call");
    terms_fn = PyObject_GetAttrString(mod, "terms");
    send_fn = PyCFunction_New(&send_def, NULL);
    Py_DECREF(mod);
    if (!control_fn || !call_fn || !terms_fn || !send_fn) return 6;
    interp = PyInterpreterState_Get();
    PyEval_SaveThread();
    return 0;
}

static ErlNifFunc funcs[] = {
    {"control", 1, control_nif, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"control_normal", 1, control_nif, 0},
    {"call", 1, call_nif, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"call_normal", 1, call_nif, 0},
    {"terms", 1, terms_nif, ERL_NIF_DIRTY_JOB_CPU_BOUND},
};

ERL_NIF_INIT(pb_bench_inproc, funcs, load, NULL, NULL, NULL)
