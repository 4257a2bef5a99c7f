/*
 * api_calls.c - the driver API calls a worker makes that answer (docs/PROTOCOL.md, "Port
 * channel opcodes: worker -> C", DRV_MONITOR .. DRV_CREATE_PORT, DRV_MK_ATOM): each does the
 * call for the port and answers PY_ANSWER with the request's id, in order with everything
 * else the port sends. DRV_DEMONITOR is here too, beside the monitors it ends.
 */
#include <string.h>

#include "named.h"
#include "pybridge_protocol.h"
#include "user.h"

#define ANSWER_OK 0
#define ANSWER_FAILED 1                  /* noproc, unset, failed: the call's own error */
#define ANSWER_UNKNOWN_PID 2             /* a pid value this port never sent */

/* PY_ANSWER: status:u8, then data */
static void answer(pb_user *u, uint32_t id, int status, const char *data, size_t len)
{
    char *b = driver_alloc(len + 1);
    b[0] = (char)status;
    if (len) memcpy(b + 1, data, len);
    pb_send_frame(u, PY_ANSWER, 0, id, b, len + 1);
    driver_free(b);
}

long pb_find_monitor(pb_user *u, const ErlDrvMonitor *m)
{
    size_t i;
    for (i = 0; i < u->nmons; i++)
        if (driver_compare_monitors(&u->mons[i], m) == 0) return (long)i;
    return -1;
}

void pb_drop_monitor(pb_user *u, long i)
{
    u->mons[i] = u->mons[--u->nmons];
}

int pb_op_monitor(pb_user *u, pb_frame *f)
{
    ErlDrvMonitor m;
    ErlDrvTermData raw;
    if (f->len != 8) return OP_BAD;
    raw = (ErlDrvTermData)get64(f->body);
    if (!pb_is_known(u, raw)) {
        answer(u, f->id, ANSWER_UNKNOWN_PID, NULL, 0);
    } else if (driver_monitor_process(u->c.port, raw, &m) != 0) {
        answer(u, f->id, ANSWER_FAILED, NULL, 0);
    } else {
        if (u->nmons == u->cmons) {
            u->cmons = u->cmons ? 2 * u->cmons : 4;
            u->mons = driver_realloc(u->mons, u->cmons * sizeof(*u->mons));
        }
        u->mons[u->nmons++] = m;
        answer(u, f->id, ANSWER_OK, (char *)&m, sizeof(m));
    }
    return OP_OK;
}

int pb_op_demonitor(pb_user *u, pb_frame *f)
{
    ErlDrvMonitor m;
    long i;
    if (f->len != sizeof(m)) return OP_BAD;
    memcpy(&m, f->body, sizeof(m));
    /* only monitors this port made: a forged one is never handed to ERTS */
    if ((i = pb_find_monitor(u, &m)) >= 0) {
        driver_demonitor_process(u->c.port, &u->mons[i]);
        pb_drop_monitor(u, i);
    }
    return OP_OK;
}

/* nine i32, then len:u8 + ERTS version, len:u8 + OTP release */
int pb_op_system_info(pb_user *u, pb_frame *f)
{
    ErlDrvSysInfo si;
    char b[9 * 4 + 2 * 256];
    size_t n = 0, l;
    int v[9], i;
    driver_system_info(&si, sizeof(si));
    v[0] = si.driver_major_version; v[1] = si.driver_minor_version;
    v[2] = si.thread_support; v[3] = si.smp_support; v[4] = si.async_threads;
    v[5] = si.scheduler_threads; v[6] = si.nif_major_version; v[7] = si.nif_minor_version;
    v[8] = si.dirty_scheduler_support;
    for (i = 0; i < 9; i++, n += 4) put32(b + n, (uint32_t)v[i]);
    l = strlen(si.erts_version) & 0xFF;
    b[n++] = (char)l; memcpy(b + n, si.erts_version, l); n += l;
    l = strlen(si.otp_release) & 0xFF;
    b[n++] = (char)l; memcpy(b + n, si.otp_release, l); n += l;
    answer(u, f->id, ANSWER_OK, b, n);
    return OP_OK;
}

int pb_op_time(pb_user *u, pb_frame *f)
{
    ErlDrvTime t;
    ErlDrvTimeUnit unit;
    char b[8];
    if (f->len != 2 || (unsigned char)f->body[1] > ERL_DRV_NSEC) return OP_BAD;
    unit = (ErlDrvTimeUnit)f->body[1];
    t = f->body[0] == TIME_MONOTONIC ? erl_drv_monotonic_time(unit) : erl_drv_time_offset(unit);
    put64(b, (uint64_t)t);
    answer(u, f->id, t == ERL_DRV_TIME_ERROR ? ANSWER_FAILED : ANSWER_OK, b, 8);
    return OP_OK;
}

int pb_op_getenv(pb_user *u, pb_frame *f)
{
    char key[4096], small[256], *val = small;
    size_t cap = sizeof(small), vlen = 0;
    int r = 1, tries;
    if (f->len == 0 || f->len >= sizeof(key) || memchr(f->body, 0, f->len)) return OP_BAD;
    memcpy(key, f->body, f->len);
    key[f->len] = 0;
    /* > 0: the buffer is too small. Grow to what ERTS asks for, and at least double: taken
     * exactly, ERTS's answer (the value's length) leaves no room for the NUL it writes */
    for (tries = 0; tries < 32; tries++) {
        vlen = cap;
        r = erl_drv_getenv(key, val, &vlen);
        if (r <= 0) break;
        cap = vlen + 1 > 2 * cap ? vlen + 1 : 2 * cap;
        if (val != small) driver_free(val);
        val = driver_alloc(cap);
    }
    if (r == 0) answer(u, f->id, ANSWER_OK, val, strlen(val));
    else answer(u, f->id, ANSWER_FAILED, NULL, 0);
    if (val != small) driver_free(val);
    return OP_OK;
}

/* key, NUL, value */
int pb_op_putenv(pb_user *u, pb_frame *f)
{
    char *kv;
    size_t kl;
    if (f->len < 2 || !memchr(f->body, 0, f->len)) return OP_BAD;
    kl = strlen(f->body);
    if (kl == 0 || memchr(f->body + kl + 1, 0, f->len - kl - 1)) return OP_BAD;
    kv = driver_alloc(f->len + 1);
    memcpy(kv, f->body, f->len);
    kv[f->len] = 0;
    answer(u, f->id, erl_drv_putenv(kv, kv + kl + 1) != 0 ? ANSWER_FAILED : ANSWER_OK, NULL, 0);
    driver_free(kv);
    return OP_OK;
}

int pb_op_busy_msgq_limits(pb_user *u, pb_frame *f)
{
    ErlDrvSizeT low, high;
    char b[16];
    if (f->len != 16) return OP_BAD;
    low = (ErlDrvSizeT)get64(f->body);
    high = (ErlDrvSizeT)get64(f->body + 8);
    erl_drv_busy_msgq_limits(u->c.port, &low, &high);
    put64(b, low);
    put64(b + 8, high);
    answer(u, f->id, ANSWER_OK, b, 16);
    return OP_OK;
}

/* raw:u64 of the owner, then the PY_OPEN text of the new instance; answer serial:u32 port:u64 */
int pb_op_create_port(pb_user *u, pb_frame *f)
{
    ErlDrvTermData owner;
    pb_user *nu;
    char a[12];
    if (f->len < 9) return OP_BAD;
    owner = (ErlDrvTermData)get64(f->body);
    if (u->state != S_OPEN) {            /* not before open_port has returned */
        answer(u, f->id, ANSWER_FAILED, NULL, 0);
        return OP_OK;
    }
    if (!pb_is_known(u, owner)) {
        answer(u, f->id, ANSWER_UNKNOWN_PID, NULL, 0);
        return OP_OK;
    }
    nu = pb_user_new(S_OPEN, u->timeout_ms, u->blocking);
    if (pb_channel_open(nu, u->c.worker) < 0) {
        pb_user_free(nu);
        answer(u, f->id, ANSWER_FAILED, NULL, 0);
        return OP_OK;
    }
    /* the creating port may set the new one up until this callback returns */
    nu->c.port = driver_create_port(u->c.port, owner, pb_driver_name, (ErlDrvData)nu);
    nu->port_term = driver_mk_port(nu->c.port);
    nu->opener = nu->last_caller = nu->last_connected = owner;
    pb_user_begin(nu, FL_CREATED, 0, f->body + 8, f->len - 8);
    put32(a, nu->serial);
    put64(a + 4, (uint64_t)nu->port_term);
    answer(u, f->id, ANSWER_OK, a, 12);
    return OP_OK;
}

/*
 * names (len:u8, Latin-1 characters)...; answer one word:u64 per name, driver_mk_atom's.
 * The worker orders a big map's atom keys by their index in the atom table, which only
 * the emulator knows (docs/PROTOCOL.md, "Big maps"). driver_mk_atom takes a C string:
 * a name holding a NUL cannot be named to it, and gets 0 (no atom is 0).
 */
int pb_op_mk_atom(pb_user *u, pb_frame *f)
{
    char name[256], *b;
    size_t off = 0, n = 0, l;
    for (; off < f->len; off += 1 + l, n++) {
        l = (unsigned char)f->body[off];
        if (off + 1 + l > f->len) return OP_BAD;
    }
    b = driver_alloc(8 * n + 1);
    for (off = 0, n = 0; off < f->len; off += 1 + l, n++) {
        l = (unsigned char)f->body[off];
        memcpy(name, f->body + off + 1, l);
        name[l] = 0;
        put64(b + 8 * n, memchr(name, 0, l) ? 0 : (uint64_t)driver_mk_atom(name));
    }
    u->n_atom_requests++;
    answer(u, f->id, ANSWER_OK, b, 8 * n);
    driver_free(b);
    return OP_OK;
}
