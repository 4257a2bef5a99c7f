/*
 * frames.c - the frames a worker sends a user port (docs/PROTOCOL.md, "Port channel
 * opcodes: worker -> C"): one handler per DRV_* opcode, found in a table indexed by the
 * opcode. This file has the answers (DRV_REPLY, DRV_ERROR) and the events, the driver API
 * calls that answer nothing; api_calls.c has those that answer with PY_ANSWER.
 *
 * Every handler checks the body before using it: a bad one is OP_BAD, and the port fails
 * with pybridge_protocol_error, never the VM.
 */
#include <string.h>

#include "pybridge_protocol.h"
#include "user.h"

typedef int (*pb_op)(pb_user *u, pb_frame *f);

/* DRV_REPLY / DRV_ERROR: the open's answer, or the one the request in flight waits for. */
static int op_answer(pb_user *u, pb_frame *f)
{
    if (u->state == S_OPENING && f->id == u->open_id) {
        if (f->op == DRV_ERROR) {
            pb_fail_open(u, f->body, f->len, NULL);
            return OP_DONE;
        }
        if (f->len != 0 && f->len != 4 && f->len != 8) return OP_BAD;
        u->state = S_OPEN;
        u->blocking = f->len >= 4 && (get32(f->body) & OPEN_BLOCKING);
        u->port_locking = f->len >= 4 && (get32(f->body) & OPEN_PORT_LOCKING);
        u->limit_ms = f->len == 8 ? get32(f->body + 4) : 0;
        driver_cancel_timer(u->c.port);
        if (u->pending_gen) {
            u->timer_gen = u->pending_gen;
            driver_set_timer(u->c.port, (unsigned long)u->pending_ms);
        }
        pb_note_idle(u);
        erl_drv_init_ack(u->c.port, (ErlDrvData)u);
        return OP_OK;
    }
    if (f->id && f->id == u->awaiting) {
        u->got = 1;
        u->got_op = f->op;
        u->got_fl = f->fl;
        u->got_len = f->len;
        u->got_body = driver_alloc(f->len ? f->len : 1);
        memcpy(u->got_body, f->body, f->len);
        u->awaiting = 0;
        return OP_OK;
    }
    /* else a wrapped request's whose caller waits as a message, or the answer to a
     * request that timed out (discarded by design) */
    return pb_answer_pending(u, f);
}

static int op_output(pb_user *u, pb_frame *f)
{
    /* allowed from start() too, as in a C driver */
    driver_output(u->c.port, f->body, (ErlDrvSizeT)f->len);
    return OP_OK;
}

static int op_set_control_flags(pb_user *u, pb_frame *f)
{
    if (f->len != 4) return OP_BAD;
    u->control_flags = (int)get32(f->body) & PORT_CONTROL_FLAG_BINARY;
    set_port_control_flags(u->c.port, u->control_flags);
    return OP_OK;
}

/* hlen:u32, header bytes, then the rest: the layout of the OUTPUT2/BINARY/V requests */
typedef struct {
    char *hdr, *rest;
    size_t hlen, rlen;
} split;

static int split_header(pb_frame *f, split *s)
{
    if (f->len < 4) return -1;
    s->hlen = get32(f->body);
    if (s->hlen > f->len - 4) return -1;
    s->hdr = f->body + 4;
    s->rest = f->body + 4 + s->hlen;
    s->rlen = f->len - 4 - s->hlen;
    return 0;
}

static int op_output2(pb_user *u, pb_frame *f)
{
    split s;
    if (split_header(f, &s) < 0) return OP_BAD;
    driver_output2(u->c.port, s.hdr, s.hlen, s.rest, s.rlen);
    return OP_OK;
}

static int op_output_binary(pb_user *u, pb_frame *f)
{
    split s;
    ErlDrvBinary *b;
    if (split_header(f, &s) < 0) return OP_BAD;
    if (u->cur_bin) {
        /* the frame is a private copy already (from the ring): reference it */
        driver_output_binary(u->c.port, s.hdr, s.hlen, u->cur_bin,
                             (ErlDrvSizeT)(s.rest - u->cur_bin->orig_bytes), s.rlen);
        return OP_OK;
    }
    b = driver_alloc_binary(s.rlen);
    memcpy(b->orig_bytes, s.rest, s.rlen);
    driver_output_binary(u->c.port, s.hdr, s.hlen, b, 0, s.rlen);
    driver_free_binary(b);
    return OP_OK;
}

/* driver_outputv of pieces (len:u32 then bytes, repeated), all in one driver binary */
static int op_outputv(pb_user *u, pb_frame *f)
{
    split s;
    size_t i, cnt = 0, off;
    char *p;
    SysIOVec *iov;
    ErlDrvBinary *bin, **binv;
    ErlIOVec ev;
    if (split_header(f, &s) < 0) return OP_BAD;
    for (i = 0; i < s.rlen; cnt++) {
        if (s.rlen - i < 4 || get32(s.rest + i) > s.rlen - i - 4) return OP_BAD;
        i += 4 + get32(s.rest + i);
    }
    if (u->cur_bin) {
        bin = u->cur_bin;
        driver_binary_inc_refc(bin);
        p = s.rest;
    } else {
        bin = driver_alloc_binary(s.rlen);
        memcpy(bin->orig_bytes, s.rest, s.rlen);
        p = bin->orig_bytes;
    }
    iov = driver_alloc(sizeof(*iov) * (cnt + 1));
    binv = driver_alloc(sizeof(*binv) * (cnt + 1));
    for (i = 0, off = 0; i < cnt; i++) {
        size_t len = get32(p + off);
        iov[i].iov_base = p + off + 4;
        iov[i].iov_len = len;
        binv[i] = bin;
        off += 4 + len;
    }
    ev.vsize = (int)cnt;
    ev.size = s.rlen - 4 * cnt;
    ev.iov = iov;
    ev.binv = binv;
    driver_outputv(u->c.port, s.hdr, s.hlen, &ev, 0);
    driver_free(iov);
    driver_free(binv);
    driver_free_binary(bin);
    return OP_OK;
}

static int op_output_term(pb_user *u, pb_frame *f)
{
    ErlDrvTermData *spec;
    int n = pb_build_spec(u, f->body, f->len, &spec), rc;
    if (n < 0) return OP_BAD;
    rc = erl_drv_output_term(u->port_term, spec, n);
    driver_free(spec);
    return rc < 0 ? OP_BAD : OP_OK;
}

/* kind 0: raw:u64 of a pid the port knows; kind 1: len:u32 + the pid's ETF, delivered
 * through pybridge_manager ({pybridge_forward, To, Msg}). Then the program. */
static int op_send_term(pb_user *u, pb_frame *f)
{
    ErlDrvTermData *spec, to;
    char *body = f->body;
    size_t blen = f->len, skip;
    int n, rc;
    if (blen < 1) return OP_BAD;
    if (body[0] == 0) {
        if (blen < 9) return OP_BAD;
        to = (ErlDrvTermData)get64(body + 1);
        if (!pb_is_known(u, to)) return OP_BAD;
        skip = 9;
    } else if (body[0] == 1) {
        if (blen < 5 || get32(body + 1) > blen - 5) return OP_BAD;
        to = 0;
        skip = 5 + get32(body + 1);
    } else {
        return OP_BAD;
    }
    if ((n = pb_build_spec(u, body + skip, blen - skip, &spec)) < 0) return OP_BAD;
    if (to) {
        rc = erl_drv_send_term(u->port_term, to, spec, n);
    } else {
        ErlDrvTermData *w = driver_alloc((size_t)(n + 8) * sizeof(*w));
        w[0] = ERL_DRV_ATOM; w[1] = driver_mk_atom("pybridge_forward");
        w[2] = ERL_DRV_EXT2TERM; w[3] = (ErlDrvTermData)(body + 5); w[4] = get32(body + 1);
        memcpy(w + 5, spec, (size_t)n * sizeof(*w));
        w[n + 5] = ERL_DRV_TUPLE; w[n + 6] = 3;
        rc = u->notify ? erl_drv_send_term(u->port_term, u->notify, w, n + 7) : 0;
        driver_free(w);
    }
    driver_free(spec);
    return rc < 0 ? OP_BAD : OP_OK;
}

static int op_set_timer(pb_user *u, pb_frame *f)
{
    ErlDrvUInt64 ms;
    if (f->len != 12) return OP_BAD;
    ms = get64(f->body);
    if (ms > 0xFFFFFFFFu) return OP_BAD;     /* about 49 days: more is a bad frame */
    if (u->state == S_OPENING) {
        /* the open timeout holds the timer until open_port returns */
        u->pending_ms = ms;
        u->pending_gen = get32(f->body + 8);
    } else {
        u->timer_gen = get32(f->body + 8);
        driver_set_timer(u->c.port, (unsigned long)ms);
    }
    return OP_OK;
}

static int op_cancel_timer(pb_user *u, pb_frame *f)
{
    (void)f;
    if (u->state == S_OPENING) u->pending_gen = 0;
    else if (u->timer_gen) driver_cancel_timer(u->c.port);
    u->timer_gen = 0;
    return OP_OK;
}

static int op_failure(pb_user *u, pb_frame *f)
{
    char name[256], *body = f->body;
    size_t blen = f->len;
    if (u->state == S_OPENING) {
        pb_fail_open(u, NULL, 0, "start_failure");
        return OP_DONE;
    }
    if (blen < 1) return OP_BAD;
    switch (body[0]) {
    case FAIL_CODE:
        if (blen != 5) return OP_BAD;
        driver_failure(u->c.port, (int)get32(body + 1));
        break;
    case FAIL_POSIX:
        if (blen != 5) return OP_BAD;
        driver_failure_posix(u->c.port, (int)get32(body + 1));
        break;
    case FAIL_EOF:
        driver_failure_eof(u->c.port);
        break;
    case FAIL_ATOM:
        if (blen < 2 || blen > sizeof(name)) return OP_BAD;
        memcpy(name, body + 1, blen - 1);
        name[blen - 1] = 0;
        if (strlen(name) != blen - 1) return OP_BAD;
        driver_failure_atom(u->c.port, name);
        break;
    default:
        return OP_BAD;
    }
    /* ERTS closes the port and then calls stop; frames after this one are moot */
    u->state = S_FAILED;
    return OP_DONE;
}

static int op_set_busy(pb_user *u, pb_frame *f)
{
    if (f->len != 1) return OP_BAD;
    u->user_busy = f->body[0] != 0;
    pb_update_busy(u);
    return OP_OK;
}

static int op_enq(pb_user *u, pb_frame *f)
{
    driver_enq(u->c.port, f->body, (ErlDrvSizeT)f->len);
    return OP_OK;
}

static int op_pushq(pb_user *u, pb_frame *f)
{
    driver_pushq(u->c.port, f->body, (ErlDrvSizeT)f->len);
    return OP_OK;
}

static int op_deq(pb_user *u, pb_frame *f)
{
    ErlDrvUInt64 n;
    if (f->len != 8) return OP_BAD;
    n = get64(f->body);
    if (n > driver_sizeq(u->c.port)) return OP_BAD;
    driver_deq(u->c.port, (ErlDrvSizeT)n);
    return OP_OK;
}

static int op_set_os_pid(pb_user *u, pb_frame *f)
{
    if (f->len != 4) return OP_BAD;
    erl_drv_set_os_pid(u->c.port, (ErlDrvSInt)get32(f->body));
    return OP_OK;
}

static int op_shm_want(pb_user *u, pb_frame *f)
{
    if (f->len) return OP_BAD;
    pb_shm_setup(u);
    return OP_OK;
}

/* DRV_HUNG: a callback of this port (port-level locking) passed its callback_limit */
static int op_hung(pb_user *u, pb_frame *f)
{
    if (f->len) return OP_BAD;
    pb_port_hung(u);
    return OP_DONE;
}

static int op_shm_return(pb_user *u, pb_frame *f)
{
    if (f->len != 8 || pb_shm_returned(u, get64(f->body)) < 0) return OP_BAD;
    return OP_OK;
}

static const pb_op ops[256] = {
    [DRV_REPLY] = op_answer,
    [DRV_ERROR] = op_answer,
    [DRV_OUTPUT] = op_output,
    [DRV_SET_CONTROL_FLAGS] = op_set_control_flags,
    [DRV_OUTPUT2] = op_output2,
    [DRV_OUTPUT_BINARY] = op_output_binary,
    [DRV_OUTPUTV] = op_outputv,
    [DRV_OUTPUT_TERM] = op_output_term,
    [DRV_SEND_TERM] = op_send_term,
    [DRV_SET_TIMER] = op_set_timer,
    [DRV_CANCEL_TIMER] = op_cancel_timer,
    [DRV_FAILURE] = op_failure,
    [DRV_SET_BUSY] = op_set_busy,
    [DRV_ENQ] = op_enq,
    [DRV_PUSHQ] = op_pushq,
    [DRV_DEQ] = op_deq,
    [DRV_MONITOR] = pb_op_monitor,
    [DRV_DEMONITOR] = pb_op_demonitor,
    [DRV_SYSTEM_INFO] = pb_op_system_info,
    [DRV_TIME] = pb_op_time,
    [DRV_GETENV] = pb_op_getenv,
    [DRV_PUTENV] = pb_op_putenv,
    [DRV_SET_OS_PID] = op_set_os_pid,
    [DRV_BUSY_MSGQ_LIMITS] = pb_op_busy_msgq_limits,
    [DRV_CREATE_PORT] = pb_op_create_port,
    [DRV_SHM_WANT] = op_shm_want,
    [DRV_SHM_RETURN] = op_shm_return,
    [DRV_HUNG] = op_hung,
    [DRV_MK_ATOM] = pb_op_mk_atom,
};

/* Returns 0 to go on, -1 when the port can take no more frames (failed or gone). */
int pb_handle_frame(pb_user *u, pb_frame *f)
{
    pb_op op = ops[f->op & 0xFF];
    int rc;
    if (u->state == S_FAILED) return -1;    /* frames after a failure are ignored */
    rc = op ? op(u, f) : OP_BAD;
    if (rc == OP_BAD) {
        pb_protocol_error(u);
        return -1;
    }
    return rc == OP_DONE ? -1 : 0;
}
