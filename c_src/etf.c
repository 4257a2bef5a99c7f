/*
 * etf.c - the replies the driver writes in the external term format itself: the wrapped
 * answers of pybridge:control/3 and call/3 (docs/PROTOCOL.md, "Reserved port_call
 * commands") and the counters map of pybridge:info/1. Layouts are drawn beside the code
 * that writes them; the tags are named in etf.h.
 */
#include <stdlib.h>
#include <string.h>

#include "etf.h"
#include "pybridge_protocol.h"

#define INFO_KEYS 17
#define INFO_MAX 1024                    /* INFO_KEYS pairs of at most 3 + 17 + 11 bytes */

/*
 * An atom as the running OTP's term_to_binary/1 writes it (every name here is ASCII):
 * ATOM_EXT up to OTP 25, SMALL_ATOM_UTF8_EXT from OTP 26, whose default minor_version is 2.
 *
 *   ┌─────┬───────────┬──────┐       ┌─────┬────────┬──────┐
 *   │ 100 │ len:u16   │ name │   or  │ 119 │ len:u8 │ name │
 *   └─────┴───────────┴──────┘       └─────┴────────┴──────┘
 */
static size_t etf_atom(char *o, const char *name)
{
    static int latin1 = -1;
    size_t n = strlen(name);
    if (latin1 < 0) {
        ErlDrvSysInfo si;
        driver_system_info(&si, sizeof(si));
        latin1 = si.otp_release && atoi(si.otp_release) < 26;
    }
    if (latin1) {
        o[0] = ATOM_EXT; o[1] = 0; o[2] = (char)n;
        memcpy(o + 3, name, n);
        return 3 + n;
    }
    o[0] = SMALL_ATOM_UTF8_EXT; o[1] = (char)n;
    memcpy(o + 2, name, n);
    return 2 + n;
}

#define ATOM_MAX(n) (3 + (n))            /* the larger of the two forms */

/*
 * {ok, _} or {error, _} up to its second element; a wrapped answer's term follows
 * without its own version byte:
 *
 *   ┌─────┬─────┬───┬───────────────┐
 *   │ 131 │ 104 │ 2 │ ok / error    │ Term...
 *   └─────┴─────┴───┴───────────────┘
 *    VER   SMALL_TUPLE  etf_atom
 */
static size_t etf_tag(char *o, int ok)
{
    o[0] = (char)ETF_VERSION; o[1] = SMALL_TUPLE_EXT; o[2] = 2;
    return 3 + etf_atom(o + 3, ok ? "ok" : "error");
}

/* ERTS's reply buffer, or one of ours when the answer does not fit (ERTS frees it). */
char *pb_reply_buf(char **rbuf, ErlDrvSizeT rlen, size_t need)
{
    if (need > rlen) *rbuf = driver_alloc(need);
    return *rbuf;
}

/* {error, {pybridge, What}}: the driver's own errors (timeout, worker_down, ...) */
ErlDrvSSizeT pb_etf_pb_error(const char *what, char **rbuf, ErlDrvSizeT rlen)
{
    char *o = pb_reply_buf(rbuf, rlen, 3 + ATOM_MAX(5) + 2 + ATOM_MAX(8) + ATOM_MAX(255));
    size_t n = etf_tag(o, 0);
    o[n++] = SMALL_TUPLE_EXT; o[n++] = 2;
    n += etf_atom(o + n, "pybridge");
    n += etf_atom(o + n, what);
    return (ErlDrvSSizeT)n;
}

/* {ok, Term} or {error, Term} of a Term in ETF (its version byte checked by the caller) */
ErlDrvSSizeT pb_etf_wrap(int ok, const char *etf, size_t len, char **rbuf, ErlDrvSizeT rlen)
{
    char *o = pb_reply_buf(rbuf, rlen, 3 + ATOM_MAX(5) + len - 1);
    size_t n = etf_tag(o, ok);
    memcpy(o + n, etf + 1, len - 1);
    return (ErlDrvSSizeT)(n + len - 1);
}

/*
 * A non-negative integer in the smallest form, as term_to_binary writes it:
 *
 *   ┌────┬────┐  v < 256
 *   │ 97 │ v  │
 *   ├────┼────┴──────┐  v < 2^31
 *   │ 98 │ v:i32     │
 *   ├─────┬───┬───┬──┴───────────────────┐  else
 *   │ 110 │ k │ 0 │ v: k bytes, LE       │
 *   └─────┴───┴───┴──────────────────────┘
 */
static size_t etf_uint(char *o, ErlDrvUInt64 v)
{
    size_t n = 0;
    int d, k;
    if (v < 256) {
        o[n++] = SMALL_INTEGER_EXT; o[n++] = (char)v;
    } else if (v < 0x80000000u) {
        o[n++] = INTEGER_EXT; put32(o + n, (uint32_t)v); n += 4;
    } else {
        for (k = 8; k > 1 && !(v >> (8 * (k - 1))); k--)
            ;
        o[n++] = SMALL_BIG_EXT; o[n++] = (char)k; o[n++] = 0;   /* k digits, positive */
        for (d = 0; d < k; d++) o[n++] = (char)(v >> (8 * d));
    }
    return n;
}

#define UINT_MAX_LEN 11

/* One key => value pair of the info map: etf_atom, then etf_uint. */
static size_t etf_pair(char *o, const char *key, ErlDrvUInt64 v)
{
    size_t n = etf_atom(o, key);
    return n + etf_uint(o + n, v);
}

/* The bucket's upper bound (us) under which fraction q of the requests finished. */
static ErlDrvUInt64 lat_quantile(pb_user *u, unsigned q)
{
    ErlDrvUInt64 total = 0, seen = 0;
    int b;
    for (b = 0; b < LAT_BUCKETS; b++) total += u->lat[b];
    if (!total) return 0;
    for (b = 0; b < LAT_BUCKETS; b++) {
        seen += u->lat[b];
        if (seen * 100 >= total * q) return (ErlDrvUInt64)1 << b;
    }
    return (ErlDrvUInt64)1 << (LAT_BUCKETS - 1);
}

/*
 * pybridge:info/1, a map of atoms to integers, its keys in term order as term_to_binary
 * writes a map of up to 32 keys:
 *
 *   ┌─────┬─────┬─────────────┬──────────────────────┐
 *   │ 131 │ 116 │ arity:u32   │ INFO_KEYS etf_pairs  │
 *   └─────┴─────┴─────────────┴──────────────────────┘
 *    VER   MAP_EXT
 */
ErlDrvSSizeT pb_etf_info(pb_user *u, char **rbuf, ErlDrvSizeT rlen)
{
    char *o = pb_reply_buf(rbuf, rlen, INFO_MAX);
    size_t n = 6;
    o[0] = (char)ETF_VERSION; o[1] = MAP_EXT;
    put32(o + 2, INFO_KEYS);
    n += etf_pair(o + n, "atom_requests", u->n_atom_requests);
    n += etf_pair(o + n, "busy", (ErlDrvUInt64)u->busy);
    n += etf_pair(o + n, "bytes_from_python", u->bytes_from_python);
    n += etf_pair(o + n, "bytes_to_python", u->bytes_to_python);
    n += etf_pair(o + n, "call", u->n_call);
    n += etf_pair(o + n, "control", u->n_control);
    n += etf_pair(o + n, "driver_queue", driver_sizeq(u->c.port));
    n += etf_pair(o + n, "late_answers", u->n_late);
    n += etf_pair(o + n, "latency_p50_us", lat_quantile(u, 50));
    n += etf_pair(o + n, "latency_p90_us", lat_quantile(u, 90));
    n += etf_pair(o + n, "latency_p99_us", lat_quantile(u, 99));
    n += etf_pair(o + n, "monitors", u->nmons);
    n += etf_pair(o + n, "os_pid", (ErlDrvUInt64)u->c.os_pid);
    n += etf_pair(o + n, "output", u->n_output);
    n += etf_pair(o + n, "output_queue", u->qbytes);
    n += etf_pair(o + n, "pending", u->npend);
    n += etf_pair(o + n, "timeout", u->n_timeout);
    return (ErlDrvSSizeT)n;
}

/*
 * A wrapped request not answered within its spin: its answer comes later as the message
 * {pybridge_reply, Port, Id, Answer} (request.c), for up to ms.
 *
 *   ┌─────┬─────┬───┬──────────────────┬──────────┬──────────┐
 *   │ 131 │ 104 │ 3 │ pybridge_pending │ etf_uint │ etf_uint │
 *   └─────┴─────┴───┴──────────────────┴──────────┴──────────┘
 *    VER   SMALL_TUPLE  etf_atom          Id         ms
 */
ErlDrvSSizeT pb_etf_pending(uint32_t id, unsigned ms, char **rbuf, ErlDrvSizeT rlen)
{
    char *o = pb_reply_buf(rbuf, rlen, 3 + ATOM_MAX(16) + 2 * UINT_MAX_LEN);
    size_t n = 3;
    o[0] = (char)ETF_VERSION; o[1] = SMALL_TUPLE_EXT; o[2] = 3;
    n += etf_atom(o + n, "pybridge_pending");
    n += etf_uint(o + n, id);
    n += etf_uint(o + n, ms);
    return (ErlDrvSSizeT)n;
}

/* The atom ok. */
ErlDrvSSizeT pb_etf_ok(char **rbuf, ErlDrvSizeT rlen)
{
    char *o = pb_reply_buf(rbuf, rlen, 1 + ATOM_MAX(2));
    o[0] = (char)ETF_VERSION;
    return (ErlDrvSSizeT)(1 + etf_atom(o + 1, "ok"));
}
