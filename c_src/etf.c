/*
 * etf.c - the replies the driver writes in the external term format itself: the wrapped
 * answers of pybridge:control/3 and call/3 (docs/PROTOCOL.md, "Reserved port_call
 * commands") and the counters map of pybridge:info/1. Layouts are drawn beside the code
 * that writes them; the tags are named in etf.h.
 */
#include <string.h>

#include "etf.h"
#include "pybridge_protocol.h"

#define INFO_KEYS 15
#define INFO_MAX 1024                    /* INFO_KEYS pairs of at most 2 + 17 + 11 bytes */

/*
 * {ok, _} and {error, _} up to their second element; a wrapped answer's term follows
 * without its own version byte:
 *
 *   ┌─────┬─────┬───┬─────┬───┬──────┐
 *   │ 131 │ 104 │ 2 │ 119 │ 2 │ "ok" │ Term...
 *   └─────┴─────┴───┴─────┴───┴──────┘
 *    VER   SMALL_TUPLE  SMALL_ATOM_UTF8
 */
static const char ETF_OK[] = {
    (char)ETF_VERSION, SMALL_TUPLE_EXT, 2, SMALL_ATOM_UTF8_EXT, 2, 'o', 'k'
};
static const char ETF_ERROR[] = {
    (char)ETF_VERSION, SMALL_TUPLE_EXT, 2, SMALL_ATOM_UTF8_EXT, 5, 'e', 'r', 'r', 'o', 'r'
};
/*
 * {pybridge, _} as the Reason of {error, Reason}, up to the length of its second atom:
 *
 *   ┌─────┬───┬─────┬───┬────────────┬─────┬─────┬──────┐
 *   │ 104 │ 2 │ 119 │ 8 │ "pybridge" │ 119 │ len │ What │
 *   └─────┴───┴─────┴───┴────────────┴─────┴─────┴──────┘
 */
static const char ETF_PB_REASON[] = {
    SMALL_TUPLE_EXT, 2, SMALL_ATOM_UTF8_EXT, 8, 'p', 'y', 'b', 'r', 'i', 'd', 'g', 'e',
    SMALL_ATOM_UTF8_EXT
};

/* ERTS's reply buffer, or one of ours when the answer does not fit (ERTS frees it). */
char *pb_reply_buf(char **rbuf, ErlDrvSizeT rlen, size_t need)
{
    if (need > rlen) *rbuf = driver_alloc(need);
    return *rbuf;
}

/* {error, {pybridge, What}}: the driver's own errors (timeout, worker_down, ...) */
ErlDrvSSizeT pb_etf_pb_error(const char *what, char **rbuf, ErlDrvSizeT rlen)
{
    size_t wl = strlen(what), n = sizeof(ETF_ERROR) + sizeof(ETF_PB_REASON) + 1 + wl;
    char *o = pb_reply_buf(rbuf, rlen, n);
    memcpy(o, ETF_ERROR, sizeof(ETF_ERROR));
    memcpy(o + sizeof(ETF_ERROR), ETF_PB_REASON, sizeof(ETF_PB_REASON));
    o[sizeof(ETF_ERROR) + sizeof(ETF_PB_REASON)] = (char)wl;
    memcpy(o + n - wl, what, wl);
    return (ErlDrvSSizeT)n;
}

/* {ok, Term} or {error, Term} of a Term in ETF (its version byte checked by the caller) */
ErlDrvSSizeT pb_etf_wrap(int ok, const char *etf, size_t len, char **rbuf, ErlDrvSizeT rlen)
{
    const char *pre = ok ? ETF_OK : ETF_ERROR;
    size_t pl = ok ? sizeof(ETF_OK) : sizeof(ETF_ERROR);
    char *o = pb_reply_buf(rbuf, rlen, pl + len - 1);
    memcpy(o, pre, pl);
    memcpy(o + pl, etf + 1, len - 1);
    return (ErlDrvSSizeT)(pl + len - 1);
}

/*
 * One key => value pair of the info map, the value in the smallest integer form:
 *
 *   ┌─────┬─────┬─────┐   ┌────┬────┐  v < 256
 *   │ 119 │ len │ key │ + │ 97 │ v  │
 *   └─────┴─────┴─────┘   ├────┼────┴──────┐  v < 2^31
 *                         │ 98 │ v:i32     │
 *                         ├─────┬───┬───┬──┴───────────────┐  else
 *                         │ 110 │ 8 │ 0 │ v: 8 bytes, LE   │
 *                         └─────┴───┴───┴──────────────────┘
 */
static size_t etf_pair(char *o, const char *key, ErlDrvUInt64 v)
{
    size_t n = 0, kl = strlen(key);
    int d;
    o[n++] = SMALL_ATOM_UTF8_EXT; o[n++] = (char)kl;
    memcpy(o + n, key, kl); n += kl;
    if (v < 256) {
        o[n++] = SMALL_INTEGER_EXT; o[n++] = (char)v;
    } else if (v < 0x80000000u) {
        o[n++] = INTEGER_EXT; put32(o + n, (uint32_t)v); n += 4;
    } else {
        o[n++] = SMALL_BIG_EXT; o[n++] = 8; o[n++] = 0;   /* 8 digits, positive */
        for (d = 0; d < 8; d++) o[n++] = (char)(v >> (8 * d));
    }
    return n;
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
 * pybridge:info/1, a map of atoms to integers:
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
    n += etf_pair(o + n, "output", u->n_output);
    n += etf_pair(o + n, "control", u->n_control);
    n += etf_pair(o + n, "call", u->n_call);
    n += etf_pair(o + n, "timeout", u->n_timeout);
    n += etf_pair(o + n, "late_answers", u->n_late);
    n += etf_pair(o + n, "bytes_to_python", u->bytes_to_python);
    n += etf_pair(o + n, "bytes_from_python", u->bytes_from_python);
    n += etf_pair(o + n, "output_queue", u->qbytes);
    n += etf_pair(o + n, "driver_queue", driver_sizeq(u->c.port));
    n += etf_pair(o + n, "busy", (ErlDrvUInt64)u->busy);
    n += etf_pair(o + n, "os_pid", (ErlDrvUInt64)u->c.os_pid);
    n += etf_pair(o + n, "monitors", u->nmons);
    n += etf_pair(o + n, "latency_p50_us", lat_quantile(u, 50));
    n += etf_pair(o + n, "latency_p90_us", lat_quantile(u, 90));
    n += etf_pair(o + n, "latency_p99_us", lat_quantile(u, 99));
    return (ErlDrvSSizeT)n;
}
