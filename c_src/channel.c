/*
 * channel.c - a user port's channel to its worker (docs/PROTOCOL.md, "Processes and
 * channels" and "Frame"): creating it, the output queue and its non-blocking writes, and
 * reading frames, which it hands to frames.c (or to shm.c when their body is in the ring).
 *
 * Writes never block: what the pipe does not take is queued (ERTS binaries referenced,
 * not copied) and written on ready_output, and the port is busy while over BUSY_HIGH is
 * queued. A port that waits for an answer keeps reading (request.c), so the two
 * directions cannot deadlock on full pipes.
 */
#define _GNU_SOURCE                      /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pybridge_protocol.h"
#include "user.h"

#define BUSY_HIGH (1u << 20)             /* queued bytes that make the port busy */
#define BUSY_LOW (256u << 10)             /* ... and that make it not busy again */
#define IOV_BATCH 64                     /* queue pieces per writev */
#define IOV_MAX_BATCH 1024               /* a frame's pieces per writev (IOV_MAX) */
#define READ_MIN (4u << 10)
#define READ_CHUNK (256u << 10)
#define READ_BUDGET (4u << 20)           /* bytes read per ready_input before yielding */

static int fd_limit = 1024;              /* RLIMIT_NOFILE: pipes below half of it */

/* At driver load, as docs/PROTOCOL.md says: the limit then decides pipes or a socket. */
void pb_channel_init(void)
{
    long n = sysconf(_SC_OPEN_MAX);
    if (n > 0) fd_limit = (int)n;
}

/*
 * Two pipes (to the worker, from it), not a socketpair: on this kind of VM a small write
 * plus its read costs 0.8 us on a pipe and 2.6 us on a unix socket (an skb per write),
 * and every message pays it on both sides. Writing to a pipe whose worker is gone is
 * EPIPE: ERTS ignores SIGPIPE. Pipes take two descriptors a side; past half the
 * descriptor limit a port gets one socketpair instead (fd == wfd), so the limit still
 * allows as many ports as one socket each would.
 */
static int make_fds(int *mine_r, int *mine_w, int *theirs, int *ntheirs)
{
    int to[2], from[2], sv[2];
    if (pipe2(to, O_CLOEXEC | O_NONBLOCK) == 0) {
        if (to[1] < fd_limit / 2 && pipe2(from, O_CLOEXEC | O_NONBLOCK) == 0) {
            if (from[1] < fd_limit / 2) {
                *mine_r = from[0];
                *mine_w = to[1];
                theirs[0] = to[0];
                theirs[1] = from[1];
                *ntheirs = 2;
                return 0;
            }
            close(from[0]);
            close(from[1]);
        }
        close(to[0]);
        close(to[1]);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) return -1;
    *mine_r = *mine_w = sv[0];
    theirs[0] = sv[1];
    *ntheirs = 1;
    return 0;
}

/* Make the channel and hand its far ends to a worker (see pb_worker_take_port). */
int pb_channel_open(pb_user *u, pb_worker_ref want)
{
    int mine_r, mine_w, theirs[2], ntheirs, i, rc;
    pb_attachment a;
    if (make_fds(&mine_r, &mine_w, theirs, &ntheirs) < 0) return -1;
    rc = pb_worker_take_port(want, u->c.group, theirs, ntheirs, &a);
    for (i = 0; i < ntheirs; i++) close(theirs[i]);
    if (rc < 0) {
        close(mine_r);
        if (mine_w != mine_r) close(mine_w);
        return -1;
    }
    u->fd = mine_r;
    u->wfd = mine_w;
    u->c.worker = a.worker;
    u->c.os_pid = a.pid;
    u->serial = a.serial;
    u->notify = a.conf.notify;
    if (!u->timeout_ms) u->timeout_ms = a.conf.timeout_ms;
    u->max_frame = a.conf.max_frame;
    u->spin_us = a.conf.spin_us;
    return 0;
}

void pb_channel_close(pb_user *u)
{
    /* stop_select closes each descriptor once ERTS no longer polls it */
    if (u->fd >= 0 && u->fd == u->wfd) {           /* a socketpair: one descriptor */
        driver_select(u->c.port, (ErlDrvEvent)(long)u->fd,
                      ERL_DRV_READ | ERL_DRV_WRITE | ERL_DRV_USE, 0);
        u->fd = u->wfd = -1;
        u->writing = 0;
        return;
    }
    if (u->fd >= 0) {
        driver_select(u->c.port, (ErlDrvEvent)(long)u->fd, ERL_DRV_READ | ERL_DRV_USE, 0);
        u->fd = -1;
    }
    if (u->wfd >= 0) {
        driver_select(u->c.port, (ErlDrvEvent)(long)u->wfd, ERL_DRV_WRITE | ERL_DRV_USE, 0);
        u->wfd = -1;
        u->writing = 0;
    }
}

/* The port is busy while the driver says so (set_busy_port) or its output queue is full. */
void pb_update_busy(pb_user *u)
{
    int b;
    if (!u->transport_busy && u->qbytes >= BUSY_HIGH) u->transport_busy = 1;
    else if (u->transport_busy && u->qbytes <= BUSY_LOW) u->transport_busy = 0;
    b = u->user_busy || u->transport_busy;
    if (b != u->busy) {
        u->busy = b;
        set_busy_port(u->c.port, b);
    }
}

static void q_push(pb_user *u, const char *p, size_t len, ErlDrvBinary *bin)
{
    pb_seg *g = driver_alloc(sizeof(*g) + (bin ? 0 : len));
    g->next = NULL;
    g->len = len;
    if (bin) {
        driver_binary_inc_refc(bin);
        g->bin = bin;
        g->ptr = (char *)p;
    } else {
        g->bin = NULL;
        g->ptr = (char *)(g + 1);
        memcpy(g->ptr, p, len);
    }
    if (u->qtail) u->qtail->next = g; else u->qhead = g;
    u->qtail = g;
    u->qbytes += len;
}

static void q_pop(pb_user *u)
{
    pb_seg *g = u->qhead;
    u->qhead = g->next;
    if (!u->qhead) u->qtail = NULL;
    if (g->bin) driver_free_binary(g->bin);
    driver_free(g);
}

void pb_clear_queue(pb_user *u)
{
    while (u->qhead) q_pop(u);
    u->qbytes = 0;
}

static void select_write(pb_user *u, int on)
{
    if (u->writing != on && u->wfd >= 0) {
        /* ERL_DRV_USE only when turning on: with on == 0 it would close the descriptor */
        driver_select(u->c.port, (ErlDrvEvent)(long)u->wfd,
                      on ? ERL_DRV_WRITE | ERL_DRV_USE : ERL_DRV_WRITE, on);
        u->writing = on;
    }
}

/* Write as much of the queue as the channel takes. 0: ok (maybe some left), -1: peer gone. */
int pb_flush_queue(pb_user *u)
{
    while (u->qhead) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        pb_seg *g;
        ssize_t w;
        for (g = u->qhead; g && n < IOV_BATCH; g = g->next, n++) {
            iov[n].iov_base = g->ptr;
            iov[n].iov_len = g->len;
        }
        w = writev(u->wfd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        u->qbytes -= (size_t)w;
        while (w > 0) {
            g = u->qhead;
            if ((size_t)w >= g->len) {
                w -= (ssize_t)g->len;
                q_pop(u);
            } else {
                g->ptr += w;
                g->len -= (size_t)w;
                w = 0;
            }
        }
    }
    select_write(u, u->qhead != NULL);
    pb_update_busy(u);
    return 0;
}

/*
 * Send a frame given as an I/O vector. binv, when not NULL, names the ERTS binary
 * behind each piece so that a piece the channel does not take now is referenced,
 * not copied. Order is kept: nothing is written directly while the queue is not empty.
 */
int pb_send_iov(pb_user *u, struct iovec *iov, int cnt, ErlDrvBinary **binv)
{
    int i;
    if (u->wfd < 0) return -1;
    for (i = 0; i < cnt; i++) u->bytes_to_python += iov[i].iov_len;
    i = 0;
    if (!u->qhead) {
        while (i < cnt) {
            int n = cnt - i > IOV_MAX_BATCH ? IOV_MAX_BATCH : cnt - i;
            ssize_t w = writev(u->wfd, iov + i, n);
            if (w < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return -1;
            }
            while (i < cnt && w >= (ssize_t)iov[i].iov_len) {
                w -= (ssize_t)iov[i].iov_len;
                i++;
            }
            if (w > 0) {
                iov[i].iov_base = (char *)iov[i].iov_base + w;
                iov[i].iov_len -= (size_t)w;
                break;
            }
        }
    }
    for (; i < cnt; i++)
        if (iov[i].iov_len)
            q_push(u, iov[i].iov_base, iov[i].iov_len, binv ? binv[i] : NULL);
    select_write(u, u->qhead != NULL);
    pb_update_busy(u);
    return 0;
}

int pb_send_frame(pb_user *u, int op, int fl, uint32_t id, const char *body, size_t blen)
{
    char h[HDR_LEN];
    struct iovec iov[2];
    mk_hdr(h, op, fl, id, blen);
    iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
    iov[1].iov_base = (char *)body; iov[1].iov_len = blen;
    return pb_send_iov(u, iov, blen ? 2 : 1, NULL);
}

int pb_send_u64(pb_user *u, int op, uint64_t v)
{
    char b[8];
    put64(b, v);
    return pb_send_frame(u, op, 0, 0, b, 8);
}

/* Read what the channel has, up to READ_BUDGET. 1: the peer closed it. */
static int fill(pb_user *u)
{
    size_t budget = READ_BUDGET, chunk = READ_MIN;
    while (budget > 0 && u->fd >= 0) {
        ssize_t r;
        size_t asked;
        if (u->icap - u->ilen < chunk) {
            /* small while ports are quiet (10,000 idle ports), larger while reads fill it */
            size_t want = u->ilen + chunk;
            if (u->ilen >= 4) {
                size_t flen = (size_t)get32(u->ibuf) + 4;
                if (flen > want && flen <= (size_t)u->max_frame + 4) want = flen;
            }
            u->ibuf = driver_realloc(u->ibuf, want);
            u->icap = want;
        }
        asked = u->icap - u->ilen;
        r = read(u->fd, u->ibuf + u->ilen, asked);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno != EAGAIN && errno != EWOULDBLOCK;
        }
        if (r == 0) return 1;
        u->ilen += (size_t)r;
        u->bytes_from_python += (size_t)r;
        budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
        if ((size_t)r < asked) break;   /* drained */
        if (chunk < READ_CHUNK) chunk *= 4;
    }
    return 0;
}

/*
 * Read what the channel has and handle every whole frame.
 * Returns 0 (go on), 1 (peer closed: the worker is gone), -1 (port failed).
 */
int pb_read_frames(pb_user *u)
{
    int eof = fill(u);
    size_t off = 0;
    while (u->ilen - off >= 4) {
        uint32_t len = get32(u->ibuf + off);
        char *h = u->ibuf + off;
        pb_frame f;
        if (len < HDR_AFTER_LEN || len > u->max_frame) {
            pb_protocol_error(u);
            return -1;
        }
        if (u->ilen - off < (size_t)len + 4) break;
        off += (size_t)len + 4;
        f.op = (unsigned char)h[4];
        f.fl = (unsigned char)h[5];
        f.id = get32(h + 6);
        f.body = h + HDR_LEN;
        f.len = (size_t)len - HDR_AFTER_LEN;
        if ((f.fl & FL_SHM ? pb_shm_frame(u, &f) : pb_handle_frame(u, &f)) < 0) {
            /* the port failed: what is left is ignored, and what was handled must never
             * be handled again (a port opened with eof lives on after failure_eof) */
            u->ilen = 0;
            return -1;
        }
    }
    if (off) {
        memmove(u->ibuf, u->ibuf + off, u->ilen - off);
        u->ilen -= off;
    }
    if (u->ilen == 0 && u->icap > READ_MIN) {
        /* nothing pending: give the buffer back down to its quiet size */
        driver_free(u->ibuf);
        u->ibuf = NULL;
        u->icap = 0;
    }
    return eof;
}
