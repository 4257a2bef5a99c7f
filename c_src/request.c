/*
 * request.c - a user port's blocking requests (docs/PROTOCOL.md, "Frame": ids; PY_CONTROL,
 * PY_CALL, and PY_OUTPUT / PY_TIMEOUT in strict mode): send one frame with an id, wait
 * for its DRV_REPLY or DRV_ERROR bounded by the port's timeout, and turn the answer into
 * port_control's / port_call's result; or, for a wrapped one not answered within the spin,
 * hand the wait to the caller and send it the answer as a message ("Pending requests").
 *
 * Only these and stop wait for Python, each at most the port's timeout. While one waits
 * it keeps reading and handling the port's frames in order (outputs of earlier commands),
 * and keeps writing its queue, so neither side can stall the other on a full pipe.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "etf.h"
#include "pybridge_protocol.h"
#include "user.h"

#define HUNG_GRACE_MS 500                /* the worker's watchdog reports within this */

enum pb_wait { WAIT_DONE, WAIT_TIMEOUT, WAIT_ENDED, WAIT_PENDING };

/* A wait sleeps at most this long between looks at whether its worker still lives: a
 * child the driver forked may hold the channel open after the worker's end. */
#define LIVENESS_MS 50

/* Spinning pays only while answers come within the spin: on a loaded machine a spinning
 * side holds the CPU its peer needs (S1 was 7 times slower spinning than sleeping there).
 * After SPIN_MISSES answers in a row came late, a port sleeps at once, and spins again
 * every SPIN_PROBE-th request to see whether answers have become quick again. */
#define SPIN_MISSES 2
#define SPIN_PROBE 32

static unsigned spin_for(pb_user *u)
{
    if (u->spin_misses < SPIN_MISSES) return u->spin_us;
    return ++u->spin_turn % SPIN_PROBE == 0 ? u->spin_us : 0;
}

static void spin_result(pb_user *u, int answered_spinning)
{
    if (answered_spinning) {
        u->spin_misses = 0;
        u->spin_turn = 0;
    } else if (u->spin_misses < SPIN_MISSES) {
        u->spin_misses++;
    }
}

uint32_t pb_new_id(pb_user *u)
{
    if (++u->next_id == 0) u->next_id = 1;
    return u->next_id;
}

/* A wait ends: the port is out of Python, unless requests of it are still pending there
 * (a worker's death then is still this class's: pb_worker_busy). */
static void wait_over(pb_user *u)
{
    if (!u->npend) pb_note_idle(u);
}

static ErlDrvTime now_ms(void)
{
    return erl_drv_monotonic_time(ERL_DRV_MSEC);
}

/*
 * Send one request frame and wait, bounded by the port's timeout, for its answer (then
 * in u->got_op, u->got_body); may_pend: only for the spin, then WAIT_PENDING. Frames that arrive meanwhile are handled in order. Past the
 * class's callback_limit and a grace the worker's watchdog would have used (DRV_HUNG, or
 * the worker's exit), the worker is taken as frozen (pb_worker_hung): a scheduler is
 * never held longer on a hung callback, whatever holds the worker's GIL.
 */
static enum pb_wait request(pb_user *u, struct iovec *iov, int cnt, uint32_t id, int may_pend)
{
    ErlDrvTime start = now_ms(), deadline = start + u->timeout_ms;
    ErlDrvTime frozen = u->limit_ms ? start + (ErlDrvTime)u->limit_ms + HUNG_GRACE_MS : deadline;
    /* Busy-poll for up to spin_us before sleeping in poll: a round trip to Python is a few
     * microseconds when neither side sleeps, and a sleeping thread's wake-up costs as much
     * again. The scheduler is held by the request either way; this spends its CPU instead
     * of its latency, within the same deadline. */
    unsigned spin = spin_for(u);
    ErlDrvTime spin_end = erl_drv_monotonic_time(ERL_DRV_USEC) + spin;
    int spinning = spin > 0;
    u->awaiting = id;
    u->got = 0;
    pb_note_busy(u);
    if (pb_send_iov(u, iov, cnt, NULL) < 0) goto down;
    while (!u->got) {
        struct pollfd p[2];
        ErlDrvTime t = now_ms(), left = deadline - t;
        int r;
        if (frozen < deadline && t >= frozen) {
            u->awaiting = 0;
            pb_worker_hung(u);             /* still marked busy: the blame is this class's */
            return WAIT_ENDED;
        }
        if (left <= 0) {
            u->awaiting = 0;
            wait_over(u);
            return WAIT_TIMEOUT;
        }
        if (frozen - t < left) left = frozen - t;
        p[0].fd = u->fd;
        p[0].events = POLLIN;
        p[1].fd = u->wfd;
        p[1].events = POLLOUT;
        p[0].revents = p[1].revents = 0;
        spinning = erl_drv_monotonic_time(ERL_DRV_USEC) < spin_end;
        if (may_pend && !spinning) {
            u->awaiting = 0;
            if (spin) spin_result(u, 0);
            return WAIT_PENDING;           /* still busy: in Python until it answers */
        }
        r = poll(p, u->qhead ? 2 : 1,
                 spinning ? 0 : (int)(left < LIVENESS_MS ? left : LIVENESS_MS));
        if (r < 0 && errno != EINTR) goto down;
        if (r == 0 && !spinning && !pb_worker_alive(u->c.worker)) goto down;
        if (r <= 0) continue;
        if ((p[1].revents & POLLERR) || ((p[1].revents & POLLOUT) && pb_flush_queue(u) < 0))
            goto down;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            r = pb_read_frames(u);
            if (r < 0) {                       /* the port failed or ended already */
                u->awaiting = 0;
                wait_over(u);
                return WAIT_ENDED;
            }
            if (r > 0 && !u->got) goto down;
        }
    }
    if (spin) spin_result(u, spinning);
    wait_over(u);
    return WAIT_DONE;
down:
    u->awaiting = 0;
    pb_worker_down(u);
    return WAIT_ENDED;
}

/*
 * Strict mode (OPEN_BLOCKING): an output or timeout waits, bounded, for the callback to
 * finish, as a C driver's would. iov[0] is HDR_LEN bytes for the header, blen counts
 * the rest; the answer carries nothing.
 */
void pb_strict_request(pb_user *u, int op, struct iovec *iov, int cnt, size_t blen)
{
    uint32_t id = pb_new_id(u);
    mk_hdr(iov[0].iov_base, op, 0, id, blen);
    if (request(u, iov, cnt, id, 0) == WAIT_DONE) {
        driver_free(u->got_body);
        u->got_body = NULL;
    }
}

static void count_latency(pb_user *u, ErlDrvTime us)
{
    int b = 0;
    while (b < LAT_BUCKETS - 1 && (1LL << b) <= us) b++;
    u->lat[b]++;
}

/* A control/call's wait, counted for pybridge:info/1 (a pending one when it answers). */
static enum pb_wait timed_request(pb_user *u, struct iovec *iov, int cnt, uint32_t id,
                                  int may_pend)
{
    ErlDrvTime t0 = erl_drv_monotonic_time(ERL_DRV_USEC);
    enum pb_wait w = request(u, iov, cnt, id, may_pend);
    if (w == WAIT_PENDING) return w;
    count_latency(u, erl_drv_monotonic_time(ERL_DRV_USEC) - t0);
    if (w == WAIT_TIMEOUT) u->n_late++;
    return w;
}

/* An ETF answer (port_call, or either wrapped): check the version byte, strip or keep it. */
static ErlDrvSSizeT etf_reply(pb_user *u, int wrapped, char *body, size_t blen, char **rbuf,
                              ErlDrvSizeT rlen)
{
    int ok = u->got_op == DRV_REPLY;
    if (blen < 2 || (unsigned char)body[0] != ETF_VERSION) {
        pb_protocol_error(u);
        return -1;
    }
    if (wrapped) return pb_etf_wrap(ok, body, blen, rbuf, rlen);
    if (!ok) return -1;
    memcpy(pb_reply_buf(rbuf, rlen, blen), body, blen);
    return (ErlDrvSSizeT)blen;
}

/*
 * port_control's reply: the bytes, in a binary if the port said so (DRV_SET_CONTROL_FLAGS).
 * None (FL_NONE) is a NULL *rbuf, which ERTS turns into [] in either mode.
 */
static ErlDrvSSizeT control_reply(pb_user *u, char *body, size_t blen, char **rbuf,
                                  ErlDrvSizeT rlen)
{
    if (u->got_op != DRV_REPLY) return -1;
    if (u->got_fl & FL_NONE) {
        *rbuf = NULL;
        return 0;
    }
    if (u->control_flags & PORT_CONTROL_FLAG_BINARY) {
        ErlDrvBinary *b = driver_alloc_binary(blen);
        memcpy(b->orig_bytes, body, blen);
        *rbuf = (char *)b;
    } else {
        memcpy(pb_reply_buf(rbuf, rlen, blen), body, blen);
    }
    return (ErlDrvSSizeT)blen;
}

/*
 * A wrapped request (pybridge:control/3, call/3) not answered within the spin does not
 * hold its scheduler: port_call returns {pybridge_pending, Id, TimeoutMs}, the caller
 * waits for {pybridge_reply, Port, Id, Answer} in a receive, and the answer is sent when
 * it comes (pb_answer_pending), from wherever this port reads its frames. Why: a scheduler
 * held through a long callback hides the work in its run queue from the node, the calls a
 * callback makes to Erlang (Port.call_erlang) included.
 */
static ErlDrvSSizeT pend(pb_user *u, uint32_t id, char **rbuf, ErlDrvSizeT rlen)
{
    if (u->npend == u->cpend) {
        u->cpend = u->cpend ? 2 * u->cpend : 4;
        u->pend = driver_realloc(u->pend, u->cpend * sizeof(*u->pend));
    }
    u->pend[u->npend].id = id;
    u->pend[u->npend].caller = driver_caller(u->c.port);
    u->pend[u->npend].start = erl_drv_monotonic_time(ERL_DRV_USEC);
    u->npend++;
    /* past the limit and the watchdog's grace without an answer the worker is frozen
     * (request()): the caller comes back then to say so (pb_user_forget) */
    return pb_etf_pending(id, u->limit_ms && u->limit_ms + HUNG_GRACE_MS < u->timeout_ms
                                  ? u->limit_ms + HUNG_GRACE_MS : u->timeout_ms,
                          rbuf, rlen);
}

static long find_pending(pb_user *u, uint32_t id)
{
    size_t i;
    for (i = 0; i < u->npend; i++)
        if (u->pend[i].id == id) return (long)i;
    return -1;
}

static void drop_pending(pb_user *u, long i)
{
    u->pend[i] = u->pend[--u->npend];
    if (!u->npend && !u->awaiting) pb_note_idle(u);
}

/* {pybridge_reply, Port, Id, Answer}, Answer given in ETF (driver_alloc-ed, freed here) */
static void send_reply(pb_user *u, pb_pending *p, char *etf, ErlDrvSSizeT n)
{
    ErlDrvTermData spec[] = {
        ERL_DRV_ATOM, driver_mk_atom("pybridge_reply"),
        ERL_DRV_PORT, u->port_term,
        ERL_DRV_UINT, (ErlDrvTermData)p->id,
        ERL_DRV_EXT2TERM, (ErlDrvTermData)etf, (ErlDrvTermData)n,
        ERL_DRV_TUPLE, 4,
    };
    erl_drv_send_term(u->port_term, p->caller, spec, sizeof(spec) / sizeof(spec[0]));
    driver_free(etf);
}

/* DRV_REPLY / DRV_ERROR of no request that waits: a pending one's goes to its caller, as
 * {ok, _} / {error, _}; another's (timed out, forgotten) is discarded. */
int pb_answer_pending(pb_user *u, pb_frame *f)
{
    long i = f->id ? find_pending(u, f->id) : -1;
    char *etf = NULL;
    ErlDrvSSizeT n;
    if (i < 0) return OP_OK;
    if (f->len < 2 || (unsigned char)f->body[0] != ETF_VERSION) return OP_BAD;
    n = pb_etf_wrap(f->op == DRV_REPLY, f->body, f->len, &etf, 0);
    count_latency(u, erl_drv_monotonic_time(ERL_DRV_USEC) - u->pend[i].start);
    send_reply(u, &u->pend[i], etf, n);
    drop_pending(u, i);
    return OP_OK;
}

/* The port ends: every pending caller gets {error, {pybridge, Why}} now. */
void pb_fail_pending(pb_user *u, const char *why)
{
    while (u->npend) {
        char *etf = NULL;
        ErlDrvSSizeT n = pb_etf_pb_error(why, &etf, 0);
        send_reply(u, &u->pend[u->npend - 1], etf, n);
        u->npend--;
    }
}

/* The answer that came (u->got_*), as port_control's / port_call's result. */
static ErlDrvSSizeT answer(pb_user *u, int op, int wrapped, char **rbuf, ErlDrvSizeT rlen)
{
    char *body = u->got_body;
    size_t blen = u->got_len;
    ErlDrvSSizeT n;
    u->got_body = NULL;
    n = wrapped || op == PY_CALL ? etf_reply(u, wrapped, body, blen, rbuf, rlen)
                                 : control_reply(u, body, blen, rbuf, rlen);
    driver_free(body);
    return n;
}

/*
 * control and call share one path: send, wait bounded, translate the answer.
 * wrapped (pybridge:control/3, call/3): the answer goes back as the ETF of
 * {ok, R} / {error, Reason}, and so do the driver's own errors; or later (pend).
 */
ErlDrvSSizeT pb_user_request(pb_user *u, int op, int wrapped, unsigned cmd, char *buf,
                             size_t len, char **rbuf, ErlDrvSizeT rlen)
{
    char h[HDR_LEN], c[4];
    struct iovec iov[3];
    uint32_t id;
    enum pb_wait w;
    if (u->state != S_OPEN)
        return wrapped ? pb_etf_pb_error(pb_end_name(u->end), rbuf, rlen) : -1;
    if (4 + len + HDR_AFTER_LEN > u->max_frame)
        return wrapped ? pb_etf_pb_error("frame_too_large", rbuf, rlen) : -1;
    pb_note_caller(u);
    id = pb_new_id(u);
    put32(c, cmd);
    mk_hdr(h, op, wrapped ? FL_WRAPPED : 0, id, 4 + len);
    iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
    iov[1].iov_base = c; iov[1].iov_len = 4;
    iov[2].iov_base = buf; iov[2].iov_len = len;
    if (op == PY_CONTROL) u->n_control++; else u->n_call++;
    w = timed_request(u, iov, 3, id, wrapped);
    if (w == WAIT_PENDING) return pend(u, id, rbuf, rlen);
    if (w != WAIT_DONE)
        return wrapped ? pb_etf_pb_error(w == WAIT_TIMEOUT ? "timeout" : pb_end_name(u->end),
                                         rbuf, rlen)
                       : -1;
    return answer(u, op, wrapped, rbuf, rlen);
}

/*
 * PB_CALL_FORGET from a pending request's caller that gave up at its timeout: the ETF of
 * <<Id:32>>. Its answer, if it comes, is discarded; it counts as late. A worker that has
 * not answered past the class's callback_limit and the watchdog's grace is frozen, as a
 * waiting request would find it (request()): its end fails every pending request, this
 * one too, with worker_hung, which the caller finds in its mailbox.
 */
ErlDrvSSizeT pb_user_forget(pb_user *u, char *buf, size_t len, char **rbuf, ErlDrvSizeT rlen)
{
    long i;
    if (len != 10 || (unsigned char)buf[0] != ETF_VERSION || buf[1] != BINARY_EXT
        || get32(buf + 2) != 4)
        return -1;
    i = find_pending(u, get32(buf + 6));
    if (i >= 0) {
        ErlDrvTime age_ms = (erl_drv_monotonic_time(ERL_DRV_USEC) - u->pend[i].start) / 1000;
        if (u->state == S_OPEN && u->limit_ms
            && age_ms >= (ErlDrvTime)u->limit_ms + HUNG_GRACE_MS) {
            pb_worker_hung(u);
        } else {
            u->n_late++;
            drop_pending(u, i);
        }
    }
    return pb_etf_ok(rbuf, rlen);
}
