/*
 * user_port.c - a user port's life (docs/PROTOCOL.md, "open_port command text", PY_OPEN,
 * PY_STOP, PY_OUTPUT, PY_TIMEOUT, PY_FLUSH, PY_PROCESS_EXIT): open, the callbacks that
 * forward to Python without waiting (but in strict mode), and the ways it ends: stop,
 * failure, a protocol error, its worker's death.
 */
#define _POSIX_C_SOURCE 200809L       /* kill */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "named.h"
#include "pybridge_protocol.h"
#include "user.h"

/* PY_OPEN's fixed part: port:u64 caller:u64 connected:u64, then the text */
#define OPEN_FIXED 24
#define DEAD_GRACE_MS 1000               /* if Erlang does not kill a dead port, it fails itself */

pb_user *pb_user_new(enum pb_state state, unsigned timeout_ms, int blocking)
{
    pb_user *u = driver_alloc(sizeof(*u));
    memset(u, 0, sizeof(*u));
    u->c.worker = PB_NO_WORKER;
    u->state = state;
    u->fd = u->wfd = -1;
    u->timeout_ms = timeout_ms;
    u->blocking = blocking;
    return u;
}

void pb_user_free(pb_user *u)
{
    pb_channel_close(u);
    pb_shm_free(u);
    pb_clear_queue(u);
    if (u->known) driver_free(u->known);
    if (u->mons) driver_free(u->mons);
    if (u->pend) driver_free(u->pend);
    if (u->got_body) driver_free(u->got_body);
    if (u->ibuf) driver_free(u->ibuf);
    driver_free(u);
}

/* {Tag, Port} to the port's pybridge_manager process */
static void tell_manager(pb_user *u, const char *tag)
{
    ErlDrvTermData t[6] = { ERL_DRV_ATOM, driver_mk_atom((char *)tag),
                            ERL_DRV_PORT, u->port_term, ERL_DRV_TUPLE, 2 };
    pb_send_to(u, u->notify, t, 6);
}

/* The spec in a PY_OPEN text: the first word after the options (each "-x ARG"). */
static const char *text_spec(const char *text, size_t *len)
{
    const char *p = text, *e;
    while (*p == '-') {
        int words = 2;
        while (words-- && *p) {
            while (*p && *p != ' ') p++;
            while (*p == ' ') p++;
        }
    }
    for (e = p; *e && *e != ' '; e++)
        ;
    *len = (size_t)(e - p);
    return p;
}

/*
 * A port attached to its worker (pb_channel_open) starts reading, and tells Python
 * (PY_OPEN, with id and flags: a request from open_port, FL_CREATED from
 * driver_create_port). Its pybridge_manager process learns of it from the manager port
 * (pb_worker_opened), never from a message of this port's: the manager blames a class for
 * its worker's death by what its ports were doing.
 */
void pb_user_begin(pb_user *u, int fl, uint32_t id, const char *text, size_t tlen)
{
    char h[HDR_LEN], b[OPEN_FIXED];
    struct iovec iov[3];
    size_t slen;
    const char *spec = text_spec(text, &slen);
    memcpy(u->spec, spec, slen < PB_SPEC_MAX ? slen : PB_SPEC_MAX - 1);
    if (id) pb_note_busy(u);             /* start runs: a death now is this class's */
    driver_select(u->c.port, (ErlDrvEvent)(long)u->fd, ERL_DRV_READ | ERL_DRV_USE, 1);
    erl_drv_set_os_pid(u->c.port, u->c.os_pid);
    pb_add_known(u, u->last_caller);
    pb_add_known(u, u->last_connected);
    pb_worker_opened(u->c.worker, u->serial, u->port_term, u->spec);
    put64(b, (uint64_t)u->port_term);
    put64(b + 8, (uint64_t)u->last_caller);
    put64(b + 16, (uint64_t)u->last_connected);
    mk_hdr(h, PY_OPEN, fl, id, OPEN_FIXED + tlen);
    iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
    iov[1].iov_base = b; iov[1].iov_len = OPEN_FIXED;
    iov[2].iov_base = (char *)text; iov[2].iov_len = tlen;
    pb_send_iov(u, iov, 3, NULL);
}

/* The port waits for its worker (start, control, call): see pb_worker_busy. */
void pb_note_busy(pb_user *u)
{
    if (u->in_python) return;
    u->in_python = 1;
    pb_worker_busy(u->c.worker, u->serial, u->spec);
}

void pb_note_idle(pb_user *u)
{
    if (!u->in_python) return;
    u->in_python = 0;
    pb_worker_idle(u->c.worker, u->serial, 0);
}

/* The channel ended while the port waited: the worker's death is likely this class's. */
static void note_lost(pb_user *u)
{
    if (!u->in_python) return;
    u->in_python = 0;
    pb_worker_idle(u->c.worker, u->serial, 1);
}

/* {pybridge_open_error, Token, Reason}, Reason given as ETF (with 131) or as an atom. */
static void report_open_error(pb_user *u, const char *etf, size_t len, const char *tag)
{
    ErlDrvTermData t[16];
    int n = 0;
    if (!u->report_errors) return;
    t[n++] = ERL_DRV_ATOM; t[n++] = driver_mk_atom("pybridge_open_error");
    t[n++] = ERL_DRV_UINT64; t[n++] = (ErlDrvTermData)&u->token;
    if (etf) {
        t[n++] = ERL_DRV_EXT2TERM; t[n++] = (ErlDrvTermData)etf; t[n++] = (ErlDrvTermData)len;
    } else if (!strcmp(tag, "badarg")) {
        t[n++] = ERL_DRV_ATOM; t[n++] = driver_mk_atom("badarg");
    } else {
        t[n++] = ERL_DRV_ATOM; t[n++] = driver_mk_atom("pybridge");
        t[n++] = ERL_DRV_ATOM; t[n++] = driver_mk_atom((char *)tag);
        t[n++] = ERL_DRV_TUPLE; t[n++] = 2;
    }
    t[n++] = ERL_DRV_TUPLE; t[n++] = 3;
    pb_send_to(u, u->opener, t, n);
}

/* -e TOKEN, -t MS and -g GROUP are the driver's; the whole text goes to Python as well */
static void read_options(pb_user *u, const char *text)
{
    const char *p = text;
    while (*p == '-') {
        char opt = p[1], *end;
        const char *arg = p + 2;
        while (*arg == ' ') arg++;
        if (opt == 'e') {
            u->report_errors = 1;
            u->token = strtoull(arg, &end, 10);
        } else if (opt == 't') {
            u->timeout_ms = (unsigned)strtoul(arg, &end, 10);
        } else if (opt == 'g') {
            u->c.group = (uint32_t)strtoul(arg, &end, 10);
        } else {
            for (end = (char *)arg; *end && *end != ' '; end++)
                ;
        }
        for (p = end; *p == ' '; p++)
            ;
    }
}

/*
 * open_port: "pybridge [opts] mod:Class args", or a named driver's "NAME args" (its
 * class's spec stands for the name). open_port returns when Python answers PY_OPEN
 * (erl_drv_init_ack), or fails at the port's timeout.
 */
ErlDrvData pb_user_start(ErlDrvPort port, char *cmd)
{
    pb_user *u = pb_user_new(S_OPENING, 0, 0);
    char *p = strchr(cmd, ' '), *text = p ? p + 1 : cmd + strlen(cmd), *named = NULL;
    u->c.port = port;
    u->port_term = driver_mk_port(port);
    u->opener = driver_caller(port);
    if (pb_driver_spec[0]) {
        size_t sl = strlen(pb_driver_spec), al = strlen(text);
        named = driver_alloc(sl + al + 2);
        memcpy(named, pb_driver_spec, sl);
        named[sl] = ' ';
        memcpy(named + sl + 1, text, al + 1);
        text = named;
        u->c.group = pb_driver_group;
    } else {
        read_options(u, text);
    }
    if (pb_channel_open(u, PB_NO_WORKER) < 0) {
        report_open_error(u, NULL, 0, "no_worker");
        if (named) driver_free(named);
        pb_user_free(u);
        return ERL_DRV_ERROR_BADARG;
    }
    u->last_caller = u->opener;
    u->last_connected = driver_connected(port);
    u->open_id = pb_new_id(u);
    pb_user_begin(u, 0, u->open_id, text, strlen(text));
    if (named) driver_free(named);
    driver_set_timer(port, u->timeout_ms);
    return (ErlDrvData)u;
}

void pb_user_stop(pb_user *u)
{
    if (u->state == S_OPEN) {
        /* deliver what is queued and the stop, bounded: nothing the user sent is dropped
         * while the worker is alive and reading */
        ErlDrvTime deadline = erl_drv_monotonic_time(ERL_DRV_MSEC) + u->timeout_ms;
        pb_send_frame(u, PY_STOP, 0, 0, NULL, 0);
        while (u->qhead) {
            struct pollfd p = { u->wfd, POLLOUT, 0 };
            ErlDrvTime left = deadline - erl_drv_monotonic_time(ERL_DRV_MSEC);
            if (left <= 0 || poll(&p, 1, (int)left) < 0 || (p.revents & (POLLERR | POLLHUP)))
                break;
            if (pb_flush_queue(u) < 0) break;
        }
    }
    pb_note_idle(u);
    pb_worker_drop_port(u->c.worker);
    u->c.worker = PB_NO_WORKER;
    pb_channel_close(u);
}

/*
 * A start that failed after start() returned. ERTS answers open_port with badarg and
 * calls stop from inside erl_drv_init_ack: the caller must stop handling this port.
 */
void pb_fail_open(pb_user *u, const char *etf, size_t len, const char *tag)
{
    pb_note_idle(u);
    report_open_error(u, etf, len, tag);
    driver_cancel_timer(u->c.port);
    u->state = S_FAILED;
    erl_drv_init_ack(u->c.port, ERL_DRV_ERROR_BADARG);
}

void pb_protocol_error(pb_user *u)
{
    if (u->state == S_OPENING) {
        pb_fail_open(u, NULL, 0, "protocol_error");
        return;
    }
    u->state = S_FAILED;
    u->end = END_PROTOCOL_ERROR;
    pb_fail_pending(u, pb_end_name(u->end));
    driver_failure_atom(u->c.port, "pybridge_protocol_error");
}

const char *pb_end_name(enum pb_end e)
{
    switch (e) {
    case END_PROTOCOL_ERROR: return "protocol_error";
    case END_HUNG: return "hung";
    case END_WORKER_HUNG: return "worker_hung";
    default: return "worker_down";
    }
}

/* The port ends for why: Erlang (pybridge_manager) exits it with {pybridge, Why}; if it
 * does not, the grace timer fails it with pybridge_Why. */
static void port_ends(pb_user *u, enum pb_end why)
{
    note_lost(u);
    pb_worker_suspect(u->c.worker);
    if (u->state == S_OPENING) {
        pb_fail_open(u, NULL, 0, pb_end_name(why));
        return;
    }
    if (u->state != S_OPEN) return;
    u->state = S_DEAD;
    u->end = why;
    pb_fail_pending(u, pb_end_name(why));
    pb_clear_queue(u);
    pb_update_busy(u);
    pb_channel_close(u);
    driver_set_timer(u->c.port, DEAD_GRACE_MS);
}

/* The worker went away: its pybridge_manager exits its ports with {pybridge, worker_down}. */
void pb_worker_down(pb_user *u)
{
    port_ends(u, END_WORKER_DOWN);
}

/* DRV_HUNG (port-level locking): this port's callback passed its callback_limit; the worker
 * and its other ports go on. */
void pb_port_hung(pb_user *u)
{
    if (u->state == S_OPEN) tell_manager(u, "pybridge_port_hung");
    port_ends(u, END_HUNG);
}

/*
 * The node's own bound: a control/call waited past the class's callback_limit and the
 * worker's watchdog said nothing (C code holding the GIL stops it too). The worker is
 * frozen for every port it serves: kill it; its pybridge_manager exits its ports with
 * {pybridge, worker_hung} and starts another.
 */
void pb_worker_hung(pb_user *u)
{
    if (u->state != S_OPEN) return;
    tell_manager(u, "pybridge_worker_hung");
    if (u->c.os_pid > 0) kill(u->c.os_pid, SIGKILL);
    port_ends(u, END_WORKER_HUNG);
}

/* PY_OUTPUT: the outputv pieces, each len:u32 then bytes; inline, in the ring, or strict */
void pb_user_outputv(pb_user *u, ErlIOVec *ev)
{
    int n = ev->vsize, i, k = 0, m = 0;
    char h[HDR_LEN];
    char *lens;
    struct iovec *iov;
    ErlDrvBinary **binv;
    size_t total = 0;
    if (u->state != S_OPEN) return;
    if (ev->size + 4 * (size_t)n + HDR_AFTER_LEN > u->max_frame) {
        /* over the limit: an error the owner sees, not an allocation in the worker */
        u->state = S_FAILED;
        driver_failure_atom(u->c.port, "pybridge_frame_too_large");
        return;
    }
    pb_note_caller(u);
    u->n_output++;
    lens = driver_alloc(4 * (size_t)n + 1);
    iov = driver_alloc(sizeof(*iov) * (2 * (size_t)n + 1));
    binv = driver_alloc(sizeof(*binv) * (2 * (size_t)n + 1));
    iov[k].iov_base = h; iov[k].iov_len = HDR_LEN; binv[k++] = NULL;
    for (i = 0; i < n; i++) {
        if (!ev->iov[i].iov_len) continue;
        put32(lens + 4 * m, (uint32_t)ev->iov[i].iov_len);
        iov[k].iov_base = lens + 4 * m; iov[k].iov_len = 4; binv[k++] = NULL;
        iov[k].iov_base = ev->iov[i].iov_base; iov[k].iov_len = ev->iov[i].iov_len;
        binv[k++] = ev->binv ? ev->binv[i] : NULL;
        total += 4 + ev->iov[i].iov_len;
        m++;
    }
    if (u->blocking) {
        pb_strict_request(u, PY_OUTPUT, iov, k, total);
    } else if (total < SHM_MIN || total > SHM_HALF ||
               pb_shm_send(u, PY_OUTPUT, iov + 1, k - 1, total) < 0) {
        mk_hdr(h, PY_OUTPUT, 0, 0, total);
        if (pb_send_iov(u, iov, k, binv) < 0) pb_worker_down(u);
    }
    driver_free(lens);
    driver_free(iov);
    driver_free(binv);
}

void pb_user_timeout(pb_user *u)
{
    char h[HDR_LEN], g[4];
    struct iovec iov[2];
    if (u->state == S_OPENING) {
        pb_fail_open(u, NULL, 0, "timeout");
    } else if (u->state == S_DEAD) {
        char reason[32] = "pybridge_";
        strcat(reason, pb_end_name(u->end));
        driver_failure_atom(u->c.port, reason);
    } else if (u->state == S_OPEN && u->timer_gen) {
        /* the generation lets Python drop a timeout that crossed a cancel or a new timer */
        put32(g, u->timer_gen);
        u->timer_gen = 0;
        u->n_timeout++;
        if (u->blocking) {
            iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
            iov[1].iov_base = g; iov[1].iov_len = 4;
            pb_strict_request(u, PY_TIMEOUT, iov, 2, 4);
        } else {
            pb_send_frame(u, PY_TIMEOUT, 0, 0, g, 4);
        }
    }
}

/* ERTS closes a port with a non-empty driver queue only once the driver empties it. */
void pb_user_flush(pb_user *u)
{
    if (u->state == S_OPEN) pb_send_frame(u, PY_FLUSH, 0, 0, NULL, 0);
}

void pb_user_process_exit(pb_user *u, ErlDrvMonitor *m)
{
    long i = pb_find_monitor(u, m);
    ErlDrvMonitor mine;
    if (i < 0) return;
    /* Python knows the bytes of our copy; ERTS's may differ where the struct is unused */
    mine = u->mons[i];
    pb_drop_monitor(u, i);
    if (u->state == S_OPEN) pb_send_frame(u, PY_PROCESS_EXIT, 0, 0, (char *)&mine, sizeof(mine));
}
