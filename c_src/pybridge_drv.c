/*
 * pybridge_drv.c - the linked-in half of pybridge.
 *
 * The wire format is normative in docs/PROTOCOL.md; this file implements it.
 *
 * Two kinds of port share this driver:
 *   manager port  "pybridge --manager"   spawns one Python worker, holds its ctl socket
 *   user port     "pybridge [opts] mod:Class args"
 *                                        one Driver instance in a worker, reached over
 *                                        its own pair of pipes
 *
 * Rules this file keeps:
 *   - Nothing but control/call (and stop, and the open timeout) ever waits for Python,
 *     and every wait is bounded by the port's timeout.
 *   - Writes are non-blocking; what does not fit is queued (binaries referenced, not
 *     copied) and drained on ready_output. While a port waits for an answer it keeps
 *     reading, so the two directions can never deadlock on full sockets.
 *   - Every frame from Python is checked before use; a bad one fails the port with
 *     pybridge_protocol_error, never the VM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <erl_driver.h>

extern char **environ;

#define PB_PROTOCOL_VERSION 1
#define PB_DRIVER_VERSION "0.1.0"

/* ---- opcodes: keep equal to docs/PROTOCOL.md ---- */
#define CTL_HELLO 0x01
#define CTL_NEW_PORT 0x02
#define CTL_PID_INFO 0x03
#define CTL_LOG 0x04
#define CTL_WORKER_EXIT 0x05
#define CTL_CLASS_INFO 0x06
#define CTL_SHM 0x07

#define PY_OPEN 0x10
#define PY_STOP 0x11
#define PY_OUTPUT 0x12
#define PY_CONTROL 0x13
#define PY_CALL 0x14
#define PY_CALLER 0x15
#define PY_CONNECTED 0x16
#define PY_TIMEOUT 0x17
#define PY_FLUSH 0x18
#define PY_ANSWER 0x19
#define PY_PROCESS_EXIT 0x1A
#define PY_SHM_ATTACH 0x1B
#define PY_SHM_RELEASE 0x1C

#define DRV_REPLY 0x80
#define DRV_ERROR 0x81
#define DRV_OUTPUT 0x82
#define DRV_SET_CONTROL_FLAGS 0x83
#define DRV_RESOLVE_PID 0x84
#define DRV_OUTPUT2 0x85
#define DRV_OUTPUT_BINARY 0x86
#define DRV_OUTPUTV 0x87
#define DRV_OUTPUT_TERM 0x88
#define DRV_SEND_TERM 0x89
#define DRV_SET_TIMER 0x8A
#define DRV_CANCEL_TIMER 0x8B
#define DRV_FAILURE 0x8C
#define DRV_SET_BUSY 0x8D
#define DRV_ENQ 0x8E
#define DRV_PUSHQ 0x8F
#define DRV_DEQ 0x90
#define DRV_MONITOR 0x91
#define DRV_DEMONITOR 0x92
#define DRV_SYSTEM_INFO 0x93
#define DRV_TIME 0x94
#define DRV_GETENV 0x95
#define DRV_PUTENV 0x96
#define DRV_SET_OS_PID 0x97
#define DRV_BUSY_MSGQ_LIMITS 0x98
#define DRV_CREATE_PORT 0x99
#define DRV_SHM_WANT 0x9A
#define DRV_SHM_RETURN 0x9B

#define TIME_MONOTONIC 0
#define TIME_OFFSET 1

#define T_EXT 0x01
#define T_PID 0x02
#define T_PORT 0x03
#define T_NIL 0x04
#define T_TUPLE 0x05
#define T_LIST 0x06
#define T_MAP 0x07

#define FAIL_CODE 0
#define FAIL_ATOM 1
#define FAIL_POSIX 2
#define FAIL_EOF 3

#define FL_WRAPPED 0x01
#define FL_NONE 0x01
#define OPEN_BLOCKING 0x01
#define FL_CREATED 0x01
#define FL_SHM 0x80

#define PB_CALL_CONTROL 0xFFFFFF01u
#define PB_CALL_CALL 0xFFFFFF02u
#define PB_CALL_INFO 0xFFFFFF03u

#define MGR_SPAWN 1
/* ---- end of opcodes ---- */

#define HDR_LEN 10                       /* len:u32 op:u8 fl:u8 id:u32 */
#define MAX_FRAME (256u << 20)          /* default of the max_frame limit */
#define MAX_WORKERS 64
#define BUSY_HIGH (1u << 20)             /* queued bytes that make the port busy */
#define BUSY_LOW (256u << 10)
#define READ_MIN (4u << 10)
#define READ_CHUNK (256u << 10)
#define READ_BUDGET (4u << 20)           /* bytes read per ready_input before yielding */
#define DEFAULT_TIMEOUT_MS 5000u
#define SHM_MIN (64u << 10)              /* bodies from this size travel in shared memory */
#define SHM_HALF (8u << 20)              /* each direction's ring; bigger bodies go inline */
#define SPIN_MAX_US 10000u              /* spin_us is capped: a scheduler is held */
#define DEAD_GRACE_MS 1000               /* if Erlang does not kill a dead port, it fails itself */

enum pb_kind { K_USER, K_MANAGER };
enum pb_state { S_OPENING, S_OPEN, S_DEAD, S_FAILED };
enum pb_wait { WAIT_DONE, WAIT_TIMEOUT, WAIT_DOWN };
enum pb_worker_state { WS_FREE, WS_HANDSHAKE, WS_LIVE, WS_DEAD };

typedef struct pb_seg {
    struct pb_seg *next;
    ErlDrvBinary *bin;                   /* referenced binary, or NULL: owned copy */
    char *ptr;
    size_t len;
} pb_seg;

typedef struct {
    enum pb_worker_state state;
    int ctl_fd;
    pid_t pid;
    unsigned gen;
    int nports;
    unsigned next_serial;
    unsigned timeout_ms;
    uint32_t max_frame;
    unsigned spin_us;
    ErlDrvTermData notify;               /* the pybridge_worker process */
} pb_worker;

typedef struct {
    ErlDrvPort port;
    ErlDrvTermData port_term;
    enum pb_kind kind;
    enum pb_state state;
    int fd;                              /* pipe from the worker (read end) */
    int wfd;                             /* pipe to the worker (write end) */
    int widx;
    unsigned wgen;
    ErlDrvTermData notify;
    unsigned timeout_ms;
    uint32_t max_frame;                  /* frames over it are errors, not allocations */
    unsigned spin_us;                    /* busy-poll before sleeping on an answer */
    uint32_t next_id;
    /* synchronous request in flight (control/call/stop) */
    uint32_t awaiting;
    int got;
    int got_op, got_fl;
    char *got_body;
    size_t got_len;
    /* open in progress */
    uint32_t open_id;
    ErlDrvTermData opener;
    int report_errors;
    ErlDrvUInt64 token;
    /* what Python was told last, and every pid value it was ever given */
    ErlDrvTermData last_caller, last_connected;
    ErlDrvTermData *known;
    size_t nknown, cknown;
    /* the user's timer: generation Python gave it (0: none); one asked for during open */
    uint32_t timer_gen, pending_gen;
    ErlDrvUInt64 pending_ms;
    int user_busy;
    /* monitors this port holds (driver_monitor_process) */
    ErlDrvMonitor *mons;
    size_t nmons, cmons;
    int control_flags;
    /* input buffer */
    char *ibuf;
    size_t ilen, icap;
    /* output queue */
    pb_seg *qhead, *qtail;
    size_t qbytes;
    int writing;                         /* ERL_DRV_WRITE selected */
    int blocking;                        /* strict mode: output and timeout wait for Python */
    /* pybridge:info/1 */
    ErlDrvUInt64 n_output, n_control, n_call, n_timeout, n_late, bytes_in, bytes_out;
    ErlDrvUInt64 lat[32];                /* control/call latency, log2 buckets of us */
    int depth;                           /* callbacks of this port running (nested) */
    int zombie;                          /* stop ran inside one of them: free on the way out */
    int busy;                            /* what ERTS was told: user_busy || transport */
    int transport_busy;                  /* the output queue is over BUSY_HIGH */
    pid_t os_pid;                        /* manager: the worker's pid */
    uint32_t serial;                     /* of the CTL_NEW_PORT that took the socket over */
    /* shared memory (docs/PROTOCOL.md): [0, SHM_HALF) C -> worker, the rest worker -> C */
    char *shm;
    int shm_failed;                      /* could not set it up: everything goes inline */
    uint64_t shm_wpos, shm_wrel;         /* our ring: bytes written, released by the worker */
    ErlDrvBinary *cur_bin;               /* the frame being handled is in it (from the ring) */
} pb_port;

/*
 * The workers, shared by the pybridge driver and the named drivers copied from it
 * (pybridge:load_driver): a copy finds the original's registry by name (dlsym).
 */
typedef struct {
    ErlDrvMutex *lock;
    int copies;                          /* named drivers using this registry */
    pb_worker workers[MAX_WORKERS];
} pb_registry;

pb_registry pybridge_registry;
static pb_registry *reg;
static int fd_limit = 1024;              /* RLIMIT_NOFILE when loaded: pipes below half */
static void *main_handle;                /* a named driver's hold on the original */

/* What a named driver serves: read from NAME.conf beside NAME.so (see pb_configure). */
static char drv_name[256] = "pybridge";
static char drv_spec[512];
static char main_so_path[4096];

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24); p[1] = (char)(v >> 16); p[2] = (char)(v >> 8); p[3] = (char)v;
}

static void put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

static uint64_t get64(const char *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

/* Frame header for a body of blen bytes. */
static void mk_hdr(char *h, int op, int fl, uint32_t id, size_t blen)
{
    put32(h, (uint32_t)(blen + 6));
    h[4] = (char)op;
    h[5] = (char)fl;
    put32(h + 6, id);
}

static ErlDrvTime now_ms(void)
{
    return erl_drv_monotonic_time(ERL_DRV_MSEC);
}

static uint32_t new_id(pb_port *s)
{
    if (++s->next_id == 0)
        s->next_id = 1;
    return s->next_id;
}

/* ------------------------------------------------------------------------ */
/* output queue                                                             */

/* The port is busy while the driver says so (set_busy_port) or its output queue is full. */
static void update_busy(pb_port *s)
{
    int b;
    if (!s->transport_busy && s->qbytes >= BUSY_HIGH) s->transport_busy = 1;
    else if (s->transport_busy && s->qbytes <= BUSY_LOW) s->transport_busy = 0;
    b = s->user_busy || s->transport_busy;
    if (b != s->busy) {
        s->busy = b;
        set_busy_port(s->port, b);
    }
}

static void q_push(pb_port *s, const char *p, size_t len, ErlDrvBinary *bin)
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
    if (s->qtail) s->qtail->next = g; else s->qhead = g;
    s->qtail = g;
    s->qbytes += len;
}

static void q_pop(pb_port *s)
{
    pb_seg *g = s->qhead;
    s->qhead = g->next;
    if (!s->qhead) s->qtail = NULL;
    if (g->bin) driver_free_binary(g->bin);
    driver_free(g);
}

static void q_clear(pb_port *s)
{
    while (s->qhead) q_pop(s);
    s->qbytes = 0;
}

static void select_write(pb_port *s, int on)
{
    if (s->writing != on && s->wfd >= 0) {
        /* ERL_DRV_USE only when turning on: with on == 0 it would close the pipe */
        driver_select(s->port, (ErlDrvEvent)(long)s->wfd, on ? ERL_DRV_WRITE | ERL_DRV_USE : ERL_DRV_WRITE, on);
        s->writing = on;
    }
}

/* Write as much of the queue as the socket takes. 0: ok (maybe some left), -1: peer gone. */
static int q_flush(pb_port *s)
{
    while (s->qhead) {
        struct iovec iov[64];
        int n = 0;
        pb_seg *g;
        for (g = s->qhead; g && n < 64; g = g->next, n++) {
            iov[n].iov_base = g->ptr;
            iov[n].iov_len = g->len;
        }
        ssize_t w = writev(s->wfd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        s->qbytes -= (size_t)w;
        while (w > 0) {
            g = s->qhead;
            if ((size_t)w >= g->len) {
                w -= (ssize_t)g->len;
                q_pop(s);
            } else {
                g->ptr += w;
                g->len -= (size_t)w;
                w = 0;
            }
        }
    }
    select_write(s, s->qhead != NULL);
    update_busy(s);
    return 0;
}

/*
 * Send a frame given as an I/O vector. binv, when not NULL, names the ERTS binary
 * behind each piece so that a piece the socket does not take now is referenced,
 * not copied. Order is kept: nothing is written directly while the queue is not empty.
 */
static int send_iov(pb_port *s, struct iovec *iov, int cnt, ErlDrvBinary **binv)
{
    int i = 0;
    if (s->wfd < 0) return -1;
    for (i = 0; i < cnt; i++) s->bytes_in += iov[i].iov_len;
    i = 0;
    if (!s->qhead) {
        while (i < cnt) {
            int n = cnt - i > 1024 ? 1024 : cnt - i;
            ssize_t w = writev(s->wfd, iov + i, n);
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
            q_push(s, iov[i].iov_base, iov[i].iov_len, binv ? binv[i] : NULL);
    select_write(s, s->qhead != NULL);
    update_busy(s);
    return 0;
}

static int send_frame(pb_port *s, int op, int fl, uint32_t id, const char *body, size_t blen)
{
    char h[HDR_LEN];
    struct iovec iov[2];
    mk_hdr(h, op, fl, id, blen);
    iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
    iov[1].iov_base = (char *)body; iov[1].iov_len = blen;
    return send_iov(s, iov, blen ? 2 : 1, NULL);
}

static int send_u64(pb_port *s, int op, uint64_t v)
{
    char b[8];
    put64(b, v);
    return send_frame(s, op, 0, 0, b, 8);
}

/* ------------------------------------------------------------------------ */
/* worker table                                                             */

/* A ctl frame with no body that carries n (1 or 2) descriptors (SCM_RIGHTS). */
static int send_ctl_fds(int ctl_fd, int op, uint32_t id, const int *fds, int n)
{
    char h[HDR_LEN];
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = { h, HDR_LEN };
    struct msghdr m;
    struct cmsghdr *c;
    memset(&m, 0, sizeof(m));
    memset(cbuf, 0, sizeof(cbuf));
    mk_hdr(h, op, 0, id, 0);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
    c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
    return sendmsg(ctl_fd, &m, MSG_NOSIGNAL) == (ssize_t)HDR_LEN;
}

static void worker_port_gone(pb_port *s)
{
    erl_drv_mutex_lock(reg->lock);
    if (s->widx >= 0 && reg->workers[s->widx].gen == s->wgen && reg->workers[s->widx].nports > 0)
        reg->workers[s->widx].nports--;
    erl_drv_mutex_unlock(reg->lock);
    s->widx = -1;
}

/*
 * Hand a worker its ends of two new pipes (to it, from it): the live worker with the
 * fewest ports, or worker `want` (of generation `wgen`) for a port made by
 * driver_create_port. The ctl serial of the hand-over goes to *serial.
 *
 * Pipes, not a socketpair: on this kind of VM a small write plus its read costs 0.8 us
 * on a pipe and 2.6 us on a unix socket (an skb per write), and every message pays it
 * on both sides. Writing to a pipe whose worker is gone is EPIPE: ERTS ignores SIGPIPE.
 * Pipes take two descriptors a side; past half the descriptor limit a port gets one
 * socketpair instead (fd == wfd), so the limit still allows as many ports as before.
 */
static int open_channel(int *mine_r, int *mine_w, int *theirs, int *ntheirs)
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

static int attach_to_worker(pb_port *s, int want, unsigned wgen, uint32_t *serial)
{
    int mine_r, mine_w, theirs[2], ntheirs, best = -1, i, rc = -1;
    if (open_channel(&mine_r, &mine_w, theirs, &ntheirs) < 0) return -1;
    erl_drv_mutex_lock(reg->lock);
    if (want >= 0) {
        if (reg->workers[want].state == WS_LIVE && reg->workers[want].gen == wgen) best = want;
    } else {
        for (i = 0; i < MAX_WORKERS; i++)
            if (reg->workers[i].state == WS_LIVE &&
                (best < 0 || reg->workers[i].nports < reg->workers[best].nports))
                best = i;
    }
    if (best >= 0) {
        pb_worker *w = &reg->workers[best];
        *serial = ++w->next_serial;
        /* ctl is blocking with a send timeout: a worker that stopped reading fails the open */
        if (send_ctl_fds(w->ctl_fd, CTL_NEW_PORT, *serial, theirs, ntheirs)) {
            w->nports++;
            s->widx = best;
            s->wgen = w->gen;
            s->notify = w->notify;
            s->os_pid = w->pid;
            if (!s->timeout_ms) s->timeout_ms = w->timeout_ms;
            s->max_frame = w->max_frame;
            s->spin_us = w->spin_us;
            s->serial = *serial;
            rc = 0;
        }
    }
    erl_drv_mutex_unlock(reg->lock);
    for (i = 0; i < ntheirs; i++) close(theirs[i]);
    if (rc < 0) {
        close(mine_r);
        if (mine_w != mine_r) close(mine_w);
        return -1;
    }
    s->fd = mine_r;
    s->wfd = mine_w;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* shared memory for large bodies                                           */

/*
 * One memfd per port, made the first time either side has a body of SHM_MIN or more:
 *
 *   0                    SHM_HALF                 2 * SHM_HALF
 *   ┌────────────────────┬────────────────────────┐
 *   │ ring C -> worker   │ ring worker -> C       │
 *   └────────────────────┴────────────────────────┘
 *
 * The descriptor goes to the worker on the ctl socket (CTL_SHM, id = the port's serial)
 * before PY_SHM_ATTACH goes on the port's channel, so the worker always has it by then.
 * A writer places a body whole at a monotonic position (skipping the ring's tail when it
 * would wrap) and sends the frame with FL_SHM and `pos:u64, len:u64` as its body; the
 * reader copies it out and hands the space back (PY_SHM_RELEASE / DRV_SHM_RETURN: free up
 * to pos + len). A body that does not fit goes inline, as before.
 */
static void shm_setup(pb_port *s)
{
    int fd, ok = 0;
    char *m;
    if (s->shm || s->shm_failed || s->fd < 0) return;
    s->shm_failed = 1;
    fd = memfd_create("pybridge-shm", MFD_CLOEXEC);
    if (fd < 0) return;
    if (ftruncate(fd, 2 * (off_t)SHM_HALF) < 0 ||
        (m = mmap(NULL, 2 * (size_t)SHM_HALF, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        close(fd);
        return;
    }
    erl_drv_mutex_lock(reg->lock);
    if (s->widx >= 0 && reg->workers[s->widx].state == WS_LIVE && reg->workers[s->widx].gen == s->wgen)
        ok = send_ctl_fds(reg->workers[s->widx].ctl_fd, CTL_SHM, s->serial, &fd, 1);
    erl_drv_mutex_unlock(reg->lock);
    close(fd);
    if (!ok) {
        munmap(m, 2 * (size_t)SHM_HALF);
        return;
    }
    s->shm = m;
    s->shm_failed = 0;
    send_u64(s, PY_SHM_ATTACH, SHM_HALF);
}

/* Copy a body of `total` bytes (the iov) into our ring. Its position, or -1: no room. */
static int64_t shm_put(pb_port *s, struct iovec *iov, int cnt, size_t total)
{
    uint64_t pos = s->shm_wpos, rel = s->shm_wrel, off = pos % SHM_HALF;
    char *p;
    int i;
    if (off && pos == rel)
        pos = rel = pos + SHM_HALF - off;   /* empty: the front, whose cache is warm */
    else if (off + total > SHM_HALF)
        pos += SHM_HALF - off;              /* a body never wraps */
    if (pos + total - rel > SHM_HALF) return -1;
    p = s->shm + pos % SHM_HALF;
    for (i = 0; i < cnt; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    s->shm_wpos = pos + total;
    s->shm_wrel = rel;
    return (int64_t)pos;
}

/* A frame whose body goes through the ring. -1: not sent (send it inline instead). */
static int shm_send(pb_port *s, int op, struct iovec *iov, int cnt, size_t total)
{
    char b[16];
    int64_t pos;
    shm_setup(s);
    if (!s->shm || (pos = shm_put(s, iov, cnt, total)) < 0) return -1;
    s->bytes_in += total;
    put64(b, (uint64_t)pos);
    put64(b + 8, total);
    /* a socket that failed fails the inline send too, which reports it */
    return send_frame(s, op, FL_SHM, 0, b, 16);
}

/* ------------------------------------------------------------------------ */
/* messages to Erlang                                                       */

static void send_to(pb_port *s, ErlDrvTermData to, ErlDrvTermData *spec, int n)
{
    if (to) erl_drv_send_term(s->port_term, to, spec, n);
}

/* {pybridge_open_error, Token, Reason}, Reason given as ETF (with 131) or as an atom pair. */
static void report_open_error(pb_port *s, const char *etf, size_t len, const char *tag)
{
    ErlDrvTermData t[16];
    int n = 0;
    if (!s->report_errors) return;
    t[n++] = ERL_DRV_ATOM; t[n++] = driver_mk_atom("pybridge_open_error");
    t[n++] = ERL_DRV_UINT64; t[n++] = (ErlDrvTermData)&s->token;
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
    send_to(s, s->opener, t, n);
}

/* ------------------------------------------------------------------------ */
/* port teardown                                                            */

static void close_fd(pb_port *s)
{
    /* stop_select closes each descriptor once ERTS no longer polls it */
    if (s->fd >= 0 && s->fd == s->wfd) {           /* a socketpair: one descriptor */
        driver_select(s->port, (ErlDrvEvent)(long)s->fd,
                      ERL_DRV_READ | ERL_DRV_WRITE | ERL_DRV_USE, 0);
        s->fd = s->wfd = -1;
        s->writing = 0;
        return;
    }
    if (s->fd >= 0) {
        driver_select(s->port, (ErlDrvEvent)(long)s->fd, ERL_DRV_READ | ERL_DRV_USE, 0);
        s->fd = -1;
    }
    if (s->wfd >= 0) {
        driver_select(s->port, (ErlDrvEvent)(long)s->wfd, ERL_DRV_WRITE | ERL_DRV_USE, 0);
        s->wfd = -1;
        s->writing = 0;
    }
}

static void free_port(pb_port *s)
{
    close_fd(s);
    if (s->shm) munmap(s->shm, 2 * (size_t)SHM_HALF);
    q_clear(s);
    if (s->known) driver_free(s->known);
    if (s->mons) driver_free(s->mons);
    if (s->got_body) driver_free(s->got_body);
    if (s->ibuf) driver_free(s->ibuf);
    driver_free(s);
}

/*
 * A start that failed after start() returned. ERTS answers open_port with badarg and
 * calls stop from inside erl_drv_init_ack: the caller must stop handling this port.
 */
static void fail_open(pb_port *s, const char *etf, size_t len, const char *tag)
{
    report_open_error(s, etf, len, tag);
    driver_cancel_timer(s->port);
    s->state = S_FAILED;
    erl_drv_init_ack(s->port, ERL_DRV_ERROR_BADARG);
}

static void protocol_error(pb_port *s)
{
    if (s->state == S_OPENING) {
        fail_open(s, NULL, 0, "protocol_error");
        return;
    }
    s->state = S_FAILED;
    driver_failure_atom(s->port, "pybridge_protocol_error");
}

/* The worker went away: Erlang (pybridge_worker) exits the port with {pybridge, worker_down}. */
static void worker_down(pb_port *s)
{
    if (s->state == S_OPENING) {
        fail_open(s, NULL, 0, "worker_down");
        return;
    }
    if (s->state != S_OPEN) return;
    s->state = S_DEAD;
    q_clear(s);
    update_busy(s);
    close_fd(s);
    driver_set_timer(s->port, DEAD_GRACE_MS);
}

/* ------------------------------------------------------------------------ */
/* frames from Python                                                       */

/*
 * Pid values handed to Python. Only these may come back as ERL_DRV_PID: a forged value
 * must never become a term. Distinct callers of one port are few; a linear scan from the
 * newest is enough.
 */
static void add_known(pb_port *s, ErlDrvTermData raw)
{
    size_t i;
    for (i = s->nknown; i > 0; i--)
        if (s->known[i - 1] == raw) return;
    if (s->nknown == s->cknown) {
        s->cknown = s->cknown ? 2 * s->cknown : 8;
        s->known = driver_realloc(s->known, s->cknown * sizeof(*s->known));
    }
    s->known[s->nknown++] = raw;
}

static int is_known(pb_port *s, ErlDrvTermData raw)
{
    size_t i;
    for (i = s->nknown; i > 0; i--)
        if (s->known[i - 1] == raw) return 1;
    return 0;
}

/* Ask the port's pybridge_worker for the external form of a pid (CTL_PID_INFO). */
static void request_pid_info(pb_port *s, ErlDrvTermData raw)
{
    ErlDrvUInt64 r64 = raw;
    ErlDrvTermData t[8] = { ERL_DRV_ATOM, driver_mk_atom("pybridge_resolve"),
                            ERL_DRV_UINT64, (ErlDrvTermData)&r64,
                            ERL_DRV_PID, raw, ERL_DRV_TUPLE, 3 };
    send_to(s, s->notify, t, 8);
}

/*
 * Tell Python who calls and who is connected when that changed. The external form is
 * requested now, before control/call may block this scheduler, so that Python rarely
 * has to wait for it.
 */
static void note_caller(pb_port *s)
{
    ErlDrvTermData c = driver_caller(s->port), k = driver_connected(s->port);
    if (k != s->last_connected) {
        s->last_connected = k;
        add_known(s, k);
        send_u64(s, PY_CONNECTED, k);
        request_pid_info(s, k);
    }
    if (c != s->last_caller) {
        s->last_caller = c;
        add_known(s, c);
        send_u64(s, PY_CALLER, c);
        if (c != k) request_pid_info(s, c);
    }
}

/*
 * A term program (docs/PROTOCOL.md) -> an ErlDrvTermData spec. Every count is checked
 * against the terms built so far, so a bad program is refused, never a bad term.
 * The spec points into p, which must outlive its use. Returns the spec length or -1.
 */
static int build_spec(pb_port *s, const char *p, size_t n, ErlDrvTermData **out)
{
    size_t i = 0, k = 0, cap = 32;
    long depth = 0;
    ErlDrvTermData *t = driver_alloc(cap * sizeof(*t));
    while (i < n) {
        int op = (unsigned char)p[i++];
        uint32_t m = 0;
        if (k + 3 > cap) {
            cap *= 2;
            t = driver_realloc(t, cap * sizeof(*t));
        }
        if (op == T_EXT || op == T_TUPLE || op == T_LIST || op == T_MAP) {
            if (n - i < 4) goto bad;
            m = get32(p + i);
            i += 4;
        }
        switch (op) {
        case T_EXT:
            if (n - i < m || m < 2 || (unsigned char)p[i] != 131) goto bad;
            t[k++] = ERL_DRV_EXT2TERM; t[k++] = (ErlDrvTermData)(p + i); t[k++] = m;
            i += m;
            depth++;
            break;
        case T_PID: {
            ErlDrvTermData raw;
            if (n - i < 8) goto bad;
            raw = (ErlDrvTermData)get64(p + i);
            i += 8;
            if (!is_known(s, raw)) goto bad;
            t[k++] = ERL_DRV_PID; t[k++] = raw;
            depth++;
            break;
        }
        case T_PORT:
            t[k++] = ERL_DRV_PORT; t[k++] = s->port_term;
            depth++;
            break;
        case T_NIL:
            t[k++] = ERL_DRV_NIL;
            depth++;
            break;
        case T_TUPLE:
            if (m > depth) goto bad;
            t[k++] = ERL_DRV_TUPLE; t[k++] = m;
            depth -= (long)m - 1;
            break;
        case T_LIST:                     /* m terms, the last of them the tail */
            if (m < 1 || m > depth) goto bad;
            t[k++] = ERL_DRV_LIST; t[k++] = m;
            depth -= (long)m - 1;
            break;
        case T_MAP:
            if (2 * (long)m > depth) goto bad;
            t[k++] = ERL_DRV_MAP; t[k++] = m;
            depth -= 2 * (long)m - 1;
            break;
        default:
            goto bad;
        }
    }
    if (depth != 1) goto bad;
    *out = t;
    return (int)k;
bad:
    driver_free(t);
    return -1;
}

/* hlen:u32, header bytes, then the rest: the layout of the OUTPUT2/BINARY/V requests */
static int split_header(char *body, size_t blen, char **hdr, size_t *hlen, char **rest, size_t *rlen)
{
    if (blen < 4) return -1;
    *hlen = get32(body);
    if (*hlen > blen - 4) return -1;
    *hdr = body + 4;
    *rest = body + 4 + *hlen;
    *rlen = blen - 4 - *hlen;
    return 0;
}

/* driver_outputv of pieces (len:u32 then bytes, repeated), all in one driver binary */
static int output_pieces(pb_port *s, char *hdr, size_t hlen, char *p, size_t n)
{
    size_t i, cnt = 0, off;
    SysIOVec *iov;
    ErlDrvBinary *bin, **binv;
    ErlIOVec ev;
    for (i = 0; i < n; cnt++) {
        if (n - i < 4 || get32(p + i) > n - i - 4) return -1;
        i += 4 + get32(p + i);
    }
    if (s->cur_bin) {
        /* the frame is a private copy already (from the ring): reference it */
        bin = s->cur_bin;
        driver_binary_inc_refc(bin);
    } else {
        bin = driver_alloc_binary(n);
        memcpy(bin->orig_bytes, p, n);
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
    ev.size = n - 4 * cnt;
    ev.iov = iov;
    ev.binv = binv;
    driver_outputv(s->port, hdr, hlen, &ev, 0);
    driver_free(iov);
    driver_free(binv);
    driver_free_binary(bin);
    return 0;
}

/* DRV_SEND_TERM: kind 0: raw:u64 of a pid the port knows; kind 1: len:u32 + the pid's ETF,
 * delivered through pybridge_worker ({pybridge_forward, To, Msg}). Then the program. */
static int send_term_frame(pb_port *s, char *body, size_t blen)
{
    ErlDrvTermData *spec, to;
    char *prog;
    size_t plen, skip;
    int n, rc;
    if (blen < 1) return -1;
    if (body[0] == 0) {
        if (blen < 9) return -1;
        to = (ErlDrvTermData)get64(body + 1);
        if (!is_known(s, to)) return -1;
        skip = 9;
    } else if (body[0] == 1) {
        if (blen < 5 || get32(body + 1) > blen - 5) return -1;
        to = 0;
        skip = 5 + get32(body + 1);
    } else {
        return -1;
    }
    prog = body + skip;
    plen = blen - skip;
    if ((n = build_spec(s, prog, plen, &spec)) < 0) return -1;
    if (to) {
        rc = erl_drv_send_term(s->port_term, to, spec, n);
    } else {
        ErlDrvTermData *w = driver_alloc((size_t)(n + 8) * sizeof(*w));
        w[0] = ERL_DRV_ATOM; w[1] = driver_mk_atom("pybridge_forward");
        w[2] = ERL_DRV_EXT2TERM; w[3] = (ErlDrvTermData)(body + 5); w[4] = get32(body + 1);
        memcpy(w + 5, spec, (size_t)n * sizeof(*w));
        w[n + 5] = ERL_DRV_TUPLE; w[n + 6] = 3;
        rc = s->notify ? erl_drv_send_term(s->port_term, s->notify, w, n + 7) : 0;
        driver_free(w);
    }
    driver_free(spec);
    return rc < 0 ? -1 : 0;
}

static int failure_frame(pb_port *s, char *body, size_t blen)
{
    char name[256];
    if (blen < 1) return -1;
    switch (body[0]) {
    case FAIL_CODE:
        if (blen != 5) return -1;
        driver_failure(s->port, (int)get32(body + 1));
        return 0;
    case FAIL_POSIX:
        if (blen != 5) return -1;
        driver_failure_posix(s->port, (int)get32(body + 1));
        return 0;
    case FAIL_EOF:
        driver_failure_eof(s->port);
        return 0;
    case FAIL_ATOM:
        if (blen < 2 || blen > 256) return -1;
        memcpy(name, body + 1, blen - 1);
        name[blen - 1] = 0;
        if (strlen(name) != blen - 1) return -1;
        driver_failure_atom(s->port, name);
        return 0;
    }
    return -1;
}

/* PY_ANSWER: status, then data; the answer to a driver API call Python waits for */
static void answer(pb_port *s, uint32_t id, int status, const char *data, size_t len)
{
    char *b = driver_alloc(len + 1);
    b[0] = (char)status;
    if (len) memcpy(b + 1, data, len);
    send_frame(s, PY_ANSWER, 0, id, b, len + 1);
    driver_free(b);
}

static long find_monitor(pb_port *s, const ErlDrvMonitor *m)
{
    size_t i;
    for (i = 0; i < s->nmons; i++)
        if (driver_compare_monitors(&s->mons[i], m) == 0) return (long)i;
    return -1;
}

static void drop_monitor(pb_port *s, long i)
{
    s->mons[i] = s->mons[--s->nmons];
}

/* Driver API calls that answer: 0 handled, -1 malformed. */
static int api_call(pb_port *s, int op, uint32_t id, char *body, size_t blen)
{
    switch (op) {
    case DRV_MONITOR: {
        ErlDrvMonitor m;
        ErlDrvTermData raw;
        if (blen != 8) return -1;
        raw = (ErlDrvTermData)get64(body);
        if (!is_known(s, raw)) {
            answer(s, id, 2, NULL, 0);
        } else if (driver_monitor_process(s->port, raw, &m) != 0) {
            answer(s, id, 1, NULL, 0);       /* noproc */
        } else {
            if (s->nmons == s->cmons) {
                s->cmons = s->cmons ? 2 * s->cmons : 4;
                s->mons = driver_realloc(s->mons, s->cmons * sizeof(*s->mons));
            }
            s->mons[s->nmons++] = m;
            answer(s, id, 0, (char *)&m, sizeof(m));
        }
        return 0;
    }
    case DRV_SYSTEM_INFO: {
        ErlDrvSysInfo si;
        char b[9 * 4 + 4 + 512];
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
        answer(s, id, 0, b, n);
        return 0;
    }
    case DRV_TIME: {
        ErlDrvTime t;
        char b[8];
        if (blen != 2 || (unsigned char)body[1] > ERL_DRV_NSEC) return -1;
        t = body[0] == TIME_MONOTONIC ? erl_drv_monotonic_time((ErlDrvTimeUnit)body[1])
                                      : erl_drv_time_offset((ErlDrvTimeUnit)body[1]);
        put64(b, (uint64_t)t);
        answer(s, id, t == ERL_DRV_TIME_ERROR, b, 8);
        return 0;
    }
    case DRV_GETENV: {
        char key[4096], small[256], *val = small;
        size_t vlen = sizeof(small);
        int r;
        if (blen == 0 || blen >= sizeof(key) || memchr(body, 0, blen)) return -1;
        memcpy(key, body, blen);
        key[blen] = 0;
        r = erl_drv_getenv(key, val, &vlen);
        if (r > 0) {                    /* vlen now says how much is needed */
            val = driver_alloc(vlen);
            r = erl_drv_getenv(key, val, &vlen);
        }
        if (r == 0) answer(s, id, 0, val, strlen(val));
        else answer(s, id, 1, NULL, 0);
        if (val != small) driver_free(val);
        return 0;
    }
    case DRV_BUSY_MSGQ_LIMITS: {
        ErlDrvSizeT low, high;
        char b[16];
        if (blen != 16) return -1;
        low = (ErlDrvSizeT)get64(body);
        high = (ErlDrvSizeT)get64(body + 8);
        erl_drv_busy_msgq_limits(s->port, &low, &high);
        put64(b, low);
        put64(b + 8, high);
        answer(s, id, 0, b, 16);
        return 0;
    }
    case DRV_CREATE_PORT: {
        /* raw:u64 of the owner, then the PY_OPEN text of the new instance */
        ErlDrvTermData owner;
        pb_port *ns;
        uint32_t serial;
        char a[12], h[HDR_LEN], b[24];
        struct iovec iov[3];
        if (blen < 9) return -1;
        owner = (ErlDrvTermData)get64(body);
        if (s->state != S_OPEN) {        /* not before open_port has returned */
            answer(s, id, 1, NULL, 0);
            return 0;
        }
        if (!is_known(s, owner)) {
            answer(s, id, 2, NULL, 0);
            return 0;
        }
        ns = driver_alloc(sizeof(*ns));
        memset(ns, 0, sizeof(*ns));
        ns->kind = K_USER;
        ns->state = S_OPEN;
        ns->fd = ns->wfd = -1;
        ns->widx = -1;
        ns->timeout_ms = s->timeout_ms;
        ns->blocking = s->blocking;
        if (attach_to_worker(ns, s->widx, s->wgen, &serial) < 0) {
            driver_free(ns);
            answer(s, id, 1, NULL, 0);
            return 0;
        }
        /* the creating port may set the new one up until this callback returns */
        ns->port = driver_create_port(s->port, owner, drv_name, (ErlDrvData)ns);
        ns->port_term = driver_mk_port(ns->port);
        ns->opener = ns->last_caller = ns->last_connected = owner;
        add_known(ns, owner);
        driver_select(ns->port, (ErlDrvEvent)(long)ns->fd, ERL_DRV_READ | ERL_DRV_USE, 1);
        erl_drv_set_os_pid(ns->port, ns->os_pid);
        put64(b, (uint64_t)ns->port_term);
        put64(b + 8, (uint64_t)owner);
        put64(b + 16, (uint64_t)owner);
        mk_hdr(h, PY_OPEN, FL_CREATED, 0, 24 + blen - 8);
        iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
        iov[1].iov_base = b; iov[1].iov_len = 24;
        iov[2].iov_base = body + 8; iov[2].iov_len = blen - 8;
        send_iov(ns, iov, 3, NULL);
        {
            ErlDrvTermData t[6] = { ERL_DRV_ATOM, driver_mk_atom("pybridge_port_opened"),
                                    ERL_DRV_PORT, ns->port_term, ERL_DRV_TUPLE, 2 };
            send_to(ns, ns->notify, t, 6);
        }
        put32(a, serial);
        put64(a + 4, (uint64_t)ns->port_term);
        answer(s, id, 0, a, 12);
        return 0;
    }
    case DRV_PUTENV: {
        char *kv;
        size_t kl;
        if (blen < 2 || !memchr(body, 0, blen)) return -1;
        kl = strlen(body);
        if (kl == 0 || memchr(body + kl + 1, 0, blen - kl - 1)) return -1;
        kv = driver_alloc(blen + 1);
        memcpy(kv, body, blen);
        kv[blen] = 0;
        answer(s, id, erl_drv_putenv(kv, kv + kl + 1) != 0, NULL, 0);
        driver_free(kv);
        return 0;
    }
    }
    return -1;
}

/* Returns 0 to go on, -1 when the port can take no more frames (failed or gone). */
static int handle_frame(pb_port *s, int op, int fl, uint32_t id, char *body, size_t blen)
{
    switch (op) {
    case DRV_REPLY:
    case DRV_ERROR:
        if (s->state == S_OPENING && id == s->open_id) {
            if (op == DRV_REPLY) {
                s->state = S_OPEN;
                s->blocking = blen == 4 && (get32(body) & OPEN_BLOCKING);
                driver_cancel_timer(s->port);
                if (s->pending_gen) {
                    s->timer_gen = s->pending_gen;
                    driver_set_timer(s->port, (unsigned long)s->pending_ms);
                }
                erl_drv_init_ack(s->port, (ErlDrvData)s);
                return 0;
            }
            fail_open(s, body, blen, NULL);
            return -1;
        }
        if (id && id == s->awaiting) {
            s->got = 1;
            s->got_op = op;
            s->got_fl = fl;
            s->got_len = blen;
            s->got_body = driver_alloc(blen ? blen : 1);
            memcpy(s->got_body, body, blen);
            s->awaiting = 0;
        }
        /* else: the answer to a request that timed out; discarded by design */
        return 0;
    case DRV_OUTPUT:
        /* allowed from start() too, as in a C driver */
        driver_output(s->port, body, (ErlDrvSizeT)blen);
        return 0;
    case DRV_SET_CONTROL_FLAGS:
        if (blen != 4) break;
        s->control_flags = (int)get32(body) & PORT_CONTROL_FLAG_BINARY;
        set_port_control_flags(s->port, s->control_flags);
        return 0;
    case DRV_OUTPUT2:
    case DRV_OUTPUT_BINARY:
    case DRV_OUTPUTV: {
        char *hdr, *rest;
        size_t hlen, rlen;
        if (split_header(body, blen, &hdr, &hlen, &rest, &rlen) < 0) break;
        if (op == DRV_OUTPUT2) {
            driver_output2(s->port, hdr, hlen, rest, rlen);
        } else if (op == DRV_OUTPUT_BINARY && s->cur_bin) {
            driver_output_binary(s->port, hdr, hlen, s->cur_bin,
                                 (ErlDrvSizeT)(rest - s->cur_bin->orig_bytes), rlen);
        } else if (op == DRV_OUTPUT_BINARY) {
            ErlDrvBinary *b = driver_alloc_binary(rlen);
            memcpy(b->orig_bytes, rest, rlen);
            driver_output_binary(s->port, hdr, hlen, b, 0, rlen);
            driver_free_binary(b);
        } else if (output_pieces(s, hdr, hlen, rest, rlen) < 0) {
            break;
        }
        return 0;
    }
    case DRV_OUTPUT_TERM: {
        ErlDrvTermData *spec;
        int n = build_spec(s, body, blen, &spec), rc;
        if (n < 0) break;
        rc = erl_drv_output_term(s->port_term, spec, n);
        driver_free(spec);
        if (rc < 0) break;
        return 0;
    }
    case DRV_SEND_TERM:
        if (send_term_frame(s, body, blen) < 0) break;
        return 0;
    case DRV_SET_TIMER: {
        ErlDrvUInt64 ms;
        if (blen != 12) break;
        ms = get64(body);
        if (ms > 0xFFFFFFFFu) break;     /* about 49 days: more is a bad frame */
        if (s->state == S_OPENING) {
            /* the open timeout holds the timer until open_port returns */
            s->pending_ms = ms;
            s->pending_gen = get32(body + 8);
        } else {
            s->timer_gen = get32(body + 8);
            driver_set_timer(s->port, (unsigned long)ms);
        }
        return 0;
    }
    case DRV_CANCEL_TIMER:
        if (s->state == S_OPENING) s->pending_gen = 0;
        else if (s->timer_gen) driver_cancel_timer(s->port);
        s->timer_gen = 0;
        return 0;
    case DRV_FAILURE:
        if (s->state == S_OPENING) {
            fail_open(s, NULL, 0, "start_failure");
            return -1;
        }
        if (failure_frame(s, body, blen) < 0) break;
        /* ERTS closes the port and then calls stop; frames after this one are moot */
        s->state = S_FAILED;
        return -1;
    case DRV_SET_BUSY:
        if (blen != 1) break;
        s->user_busy = body[0] != 0;
        update_busy(s);
        return 0;
    case DRV_ENQ:
        driver_enq(s->port, body, (ErlDrvSizeT)blen);
        return 0;
    case DRV_PUSHQ:
        driver_pushq(s->port, body, (ErlDrvSizeT)blen);
        return 0;
    case DRV_DEQ: {
        ErlDrvUInt64 n;
        if (blen != 8) break;
        n = get64(body);
        if (n > driver_sizeq(s->port)) break;
        driver_deq(s->port, (ErlDrvSizeT)n);
        return 0;
    }
    case DRV_MONITOR:
    case DRV_SYSTEM_INFO:
    case DRV_TIME:
    case DRV_GETENV:
    case DRV_PUTENV:
    case DRV_BUSY_MSGQ_LIMITS:
    case DRV_CREATE_PORT:
        if (api_call(s, op, id, body, blen) < 0) break;
        return 0;
    case DRV_DEMONITOR: {
        ErlDrvMonitor m;
        long i;
        if (blen != sizeof(m)) break;
        memcpy(&m, body, sizeof(m));
        /* only monitors this port made: a forged one is never handed to ERTS */
        if ((i = find_monitor(s, &m)) >= 0) {
            driver_demonitor_process(s->port, &s->mons[i]);
            drop_monitor(s, i);
        }
        return 0;
    }
    case DRV_SET_OS_PID:
        if (blen != 4) break;
        erl_drv_set_os_pid(s->port, (ErlDrvSInt)get32(body));
        return 0;
    case DRV_SHM_WANT:
        if (blen) break;
        shm_setup(s);
        return 0;
    case DRV_SHM_RETURN: {
        uint64_t upto;
        if (blen != 8) break;
        upto = get64(body);
        if (upto < s->shm_wrel || upto > s->shm_wpos) break;
        s->shm_wrel = upto;
        return 0;
    }
    case DRV_RESOLVE_PID: {
        ErlDrvTermData raw;
        if (blen != 8) break;
        raw = (ErlDrvTermData)get64(body);
        /* only pids this port handed out itself: a forged value must never become a term */
        if (is_known(s, raw))
            request_pid_info(s, raw);
        return 0;
    }
    default:
        break;
    }
    protocol_error(s);
    return -1;
}

/* A frame flagged FL_SHM: its body is in the worker's ring. */
static int shm_frame(pb_port *s, int op, int fl, uint32_t id, char *body, size_t blen)
{
    uint64_t pos, len;
    ErlDrvBinary *b;
    int rc;
    if (!s->shm || blen != 16) goto bad;
    pos = get64(body);
    len = get64(body + 8);
    if (len > SHM_HALF || pos % SHM_HALF + len > SHM_HALF || len + 6 > s->max_frame) goto bad;
    /* a private copy: the worker cannot change what handle_frame has checked */
    b = driver_alloc_binary(len ? (ErlDrvSizeT)len : 1);
    memcpy(b->orig_bytes, s->shm + SHM_HALF + pos % SHM_HALF, (size_t)len);
    send_u64(s, PY_SHM_RELEASE, pos + len);
    s->cur_bin = b;
    rc = handle_frame(s, op, fl, id, b->orig_bytes, (size_t)len);
    s->cur_bin = NULL;
    driver_free_binary(b);
    return rc;
bad:
    protocol_error(s);
    return -1;
}

/*
 * Read what the socket has and handle every whole frame.
 * Returns 0 (go on), 1 (peer closed: the worker is gone), -1 (port failed).
 */
static int read_frames(pb_port *s)
{
    size_t budget = READ_BUDGET;
    int eof = 0;
    size_t chunk = READ_MIN;
    while (budget > 0 && s->fd >= 0) {
        ssize_t r;
        size_t asked;
        if (s->icap - s->ilen < chunk) {
            /* small while ports are quiet (10,000 idle ports), larger while reads fill it */
            size_t want = s->ilen + chunk;
            if (s->ilen >= 4) {
                size_t flen = (size_t)get32(s->ibuf) + 4;
                if (flen > want && flen <= (size_t)s->max_frame + 4) want = flen;
            }
            s->ibuf = driver_realloc(s->ibuf, want);
            s->icap = want;
        }
        asked = s->icap - s->ilen;
        r = read(s->fd, s->ibuf + s->ilen, asked);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            eof = 1;
            break;
        }
        if (r == 0) {
            eof = 1;
            break;
        }
        s->ilen += (size_t)r;
        s->bytes_out += (size_t)r;
        budget = (size_t)r >= budget ? 0 : budget - (size_t)r;
        if ((size_t)r < asked) break;   /* drained */
        if (chunk < READ_CHUNK) chunk *= 4;
    }
    {
        size_t off = 0;
        while (s->ilen - off >= 4) {
            uint32_t len = get32(s->ibuf + off);
            char *f;
            if (len < 6 || len > s->max_frame) {
                protocol_error(s);
                return -1;
            }
            if (s->ilen - off < (size_t)len + 4) break;
            f = s->ibuf + off;
            off += (size_t)len + 4;
            if (((unsigned char)f[5] & FL_SHM
                 ? shm_frame(s, (unsigned char)f[4], (unsigned char)f[5] & ~FL_SHM, get32(f + 6),
                             f + HDR_LEN, (size_t)len - 6)
                 : handle_frame(s, (unsigned char)f[4], (unsigned char)f[5], get32(f + 6),
                                f + HDR_LEN, (size_t)len - 6)) < 0)
                return -1;
        }
        if (off) {
            memmove(s->ibuf, s->ibuf + off, s->ilen - off);
            s->ilen -= off;
        }
    }
    if (s->ilen == 0 && s->icap > READ_MIN) {
        /* nothing pending: give the buffer back down to its quiet size */
        driver_free(s->ibuf);
        s->ibuf = NULL;
        s->icap = 0;
    }
    return eof ? 1 : 0;
}

/*
 * Send one request frame and wait, bounded by the port's timeout, for its answer.
 * Frames that arrive meanwhile (outputs of earlier commands) are handled in order.
 */
static enum pb_wait request(pb_port *s, struct iovec *iov, int cnt, uint32_t id)
{
    ErlDrvTime deadline = now_ms() + s->timeout_ms;
    /* Busy-poll for up to spin_us before sleeping in poll: a round trip to Python is a few
     * microseconds when neither side sleeps, and a sleeping thread's wake-up costs as much
     * again. The scheduler is held by the request either way; this spends its CPU instead
     * of its latency, within the same deadline. */
    ErlDrvTime spin_end = erl_drv_monotonic_time(ERL_DRV_USEC) + s->spin_us;
    s->awaiting = id;
    s->got = 0;
    if (send_iov(s, iov, cnt, NULL) < 0) goto down;
    while (!s->got) {
        struct pollfd p[2];
        ErlDrvTime left = deadline - now_ms();
        int r;
        if (left <= 0) {
            s->awaiting = 0;
            return WAIT_TIMEOUT;
        }
        p[0].fd = s->fd;
        p[0].events = POLLIN;
        p[1].fd = s->wfd;
        p[1].events = POLLOUT;
        p[0].revents = p[1].revents = 0;
        r = poll(p, s->qhead ? 2 : 1,
                 erl_drv_monotonic_time(ERL_DRV_USEC) < spin_end ? 0 : (int)left);
        if (r < 0 && errno != EINTR) goto down;
        if (r <= 0) continue;
        if ((p[1].revents & POLLERR) || ((p[1].revents & POLLOUT) && q_flush(s) < 0)) goto down;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            r = read_frames(s);
            if (r < 0) return WAIT_DOWN;       /* port failed already */
            if (r > 0 && !s->got) goto down;
        }
    }
    return WAIT_DONE;
down:
    s->awaiting = 0;
    worker_down(s);
    return WAIT_DOWN;
}

/* a strict-mode wait has no answer to use */
static void drop_reply(pb_port *s)
{
    driver_free(s->got_body);
    s->got_body = NULL;
}

static void take_reply(pb_port *s, char **body, size_t *len)
{
    *body = s->got_body;
    *len = s->got_len;
    s->got_body = NULL;
}

/* ------------------------------------------------------------------------ */
/* user port callbacks                                                      */

static ErlDrvData user_start(ErlDrvPort port, char *cmd)
{
    pb_port *s = driver_alloc(sizeof(*s));
    char *p = strchr(cmd, ' '), *text, *named_text = NULL;
    size_t tlen;
    uint32_t serial;
    memset(s, 0, sizeof(*s));
    s->port = port;
    s->port_term = driver_mk_port(port);
    s->kind = K_USER;
    s->state = S_OPENING;
    s->fd = s->wfd = -1;
    s->widx = -1;
    s->opener = driver_caller(port);
    text = p ? p + 1 : cmd + strlen(cmd);
    if (drv_spec[0]) {
        /* a named driver: "NAME args" serves its class, "args" are start's command */
        size_t sl = strlen(drv_spec), al = strlen(text);
        named_text = driver_alloc(sl + al + 2);
        memcpy(named_text, drv_spec, sl);
        named_text[sl] = ' ';
        memcpy(named_text + sl + 1, text, al + 1);
        text = named_text;
    }
    /* -e TOKEN and -t MS are ours; everything goes to Python as well */
    for (p = text; !named_text && *p == '-';) {
        char opt = p[1], *arg = p + 2, *end;
        while (*arg == ' ') arg++;
        if (opt == 'e') { s->report_errors = 1; s->token = strtoull(arg, &end, 10); }
        else if (opt == 't') s->timeout_ms = (unsigned)strtoul(arg, &end, 10);
        else { end = arg; while (*end && *end != ' ') end++; }
        p = end;
        while (*p == ' ') p++;
    }
    tlen = strlen(text);
    if (attach_to_worker(s, -1, 0, &serial) < 0) {
        report_open_error(s, NULL, 0, "no_worker");
        if (named_text) driver_free(named_text);
        driver_free(s);
        return ERL_DRV_ERROR_BADARG;
    }
    driver_select(port, (ErlDrvEvent)(long)s->fd, ERL_DRV_READ | ERL_DRV_USE, 1);
    erl_drv_set_os_pid(port, s->os_pid);
    {
        char h[HDR_LEN], b[24];
        struct iovec iov[3];
        s->last_caller = s->opener;
        s->last_connected = driver_connected(port);
        add_known(s, s->opener);
        add_known(s, s->last_connected);
        put64(b, (uint64_t)s->port_term);
        put64(b + 8, (uint64_t)s->last_caller);
        put64(b + 16, (uint64_t)s->last_connected);
        s->open_id = new_id(s);
        mk_hdr(h, PY_OPEN, 0, s->open_id, 24 + tlen);
        iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
        iov[1].iov_base = b; iov[1].iov_len = 24;
        iov[2].iov_base = text; iov[2].iov_len = tlen;
        send_iov(s, iov, 3, NULL);
        if (named_text) driver_free(named_text);
    }
    {
        ErlDrvTermData t[6] = { ERL_DRV_ATOM, driver_mk_atom("pybridge_port_opened"),
                                ERL_DRV_PORT, s->port_term, ERL_DRV_TUPLE, 2 };
        send_to(s, s->notify, t, 6);
    }
    /* open_port returns when Python answers PY_OPEN (erl_drv_init_ack), or at the timeout */
    driver_set_timer(port, s->timeout_ms);
    return (ErlDrvData)s;
}

static void user_stop(pb_port *s)
{
    if (s->state == S_OPEN) {
        /* deliver what is queued and the stop, bounded: nothing the user sent is dropped
         * while the worker is alive and reading */
        ErlDrvTime deadline = now_ms() + s->timeout_ms;
        send_frame(s, PY_STOP, 0, 0, NULL, 0);
        while (s->qhead) {
            struct pollfd p = { s->wfd, POLLOUT, 0 };
            ErlDrvTime left = deadline - now_ms();
            if (left <= 0 || poll(&p, 1, (int)left) < 0 || (p.revents & (POLLERR | POLLHUP)))
                break;
            if (q_flush(s) < 0) break;
        }
    }
    worker_port_gone(s);
    close_fd(s);
}

static void user_outputv(pb_port *s, ErlIOVec *ev)
{
    int n = ev->vsize, i, k = 0, m = 0;
    char h[HDR_LEN];
    char *lens;
    struct iovec *iov;
    ErlDrvBinary **binv;
    size_t total = 0;
    if (s->state != S_OPEN) return;
    if (ev->size + 4 * (size_t)n + 6 > s->max_frame) {
        /* over the limit: an error the owner sees, not an allocation in the worker */
        s->state = S_FAILED;
        driver_failure_atom(s->port, "pybridge_frame_too_large");
        return;
    }
    note_caller(s);
    s->n_output++;
    lens = driver_alloc(4 * (size_t)n + 1);
    iov = driver_alloc(sizeof(*iov) * (2 * (size_t)n + 1));
    binv = driver_alloc(sizeof(*binv) * (2 * (size_t)n + 1));
    iov[k].iov_base = h; iov[k].iov_len = HDR_LEN; binv[k++] = NULL;
    for (i = 0; i < n; i++) {
        if (!ev->iov[i].iov_len) continue;
        put32(lens + 4 * m, (uint32_t)ev->iov[i].iov_len);
        iov[k].iov_base = lens + 4 * m; iov[k].iov_len = 4; binv[k++] = NULL;
        iov[k].iov_base = ev->iov[i].iov_base; iov[k].iov_len = ev->iov[i].iov_len; binv[k++] = ev->binv ? ev->binv[i] : NULL;
        total += 4 + ev->iov[i].iov_len;
        m++;
    }
    if (s->blocking) {
        /* strict mode: wait, bounded, for the callback to finish, as a C driver's would */
        uint32_t id = new_id(s);
        mk_hdr(h, PY_OUTPUT, 0, id, total);
        if (request(s, iov, k, id) == WAIT_DONE) drop_reply(s);
    } else if (total < SHM_MIN || total > SHM_HALF || shm_send(s, PY_OUTPUT, iov + 1, k - 1, total) < 0) {
        mk_hdr(h, PY_OUTPUT, 0, 0, total);
        if (send_iov(s, iov, k, binv) < 0) worker_down(s);
    }
    driver_free(lens);
    driver_free(iov);
    driver_free(binv);
}

/* ETF prefix of {ok, _} / {error, _}: the wrapped answers carry the payload after it. */
static const char ETF_OK[] = { (char)131, 104, 2, 119, 2, 'o', 'k' };
static const char ETF_ERROR[] = { (char)131, 104, 2, 119, 5, 'e', 'r', 'r', 'o', 'r' };
static const char ETF_PB_REASON[] = { 104, 2, 119, 8, 'p', 'y', 'b', 'r', 'i', 'd', 'g', 'e', 119 };

static char *reply_buf(char **rbuf, ErlDrvSizeT rlen, size_t need)
{
    if (need > rlen) *rbuf = driver_alloc(need);
    return *rbuf;
}

/* {error, {pybridge, What}} */
static ErlDrvSSizeT wrapped_pb_error(const char *what, char **rbuf, ErlDrvSizeT rlen)
{
    size_t wl = strlen(what), n = sizeof(ETF_ERROR) + sizeof(ETF_PB_REASON) + 1 + wl;
    char *o = reply_buf(rbuf, rlen, n);
    memcpy(o, ETF_ERROR, sizeof(ETF_ERROR));
    memcpy(o + sizeof(ETF_ERROR), ETF_PB_REASON, sizeof(ETF_PB_REASON));
    o[sizeof(ETF_ERROR) + sizeof(ETF_PB_REASON)] = (char)wl;
    memcpy(o + n - wl, what, wl);
    return (ErlDrvSSizeT)n;
}

/*
 * control and call share one path: send, wait bounded, translate the answer.
 * wrapped: the answer goes back as the ETF of {ok, R} / {error, Reason}.
 */
static ErlDrvSSizeT user_request(pb_port *s, int op, int wrapped, unsigned cmd,
                                 char *buf, size_t len, char **rbuf, ErlDrvSizeT rlen)
{
    char h[HDR_LEN], c[4], *body;
    struct iovec iov[3];
    uint32_t id;
    size_t blen;
    enum pb_wait w;
    if (s->state != S_OPEN)
        return wrapped ? wrapped_pb_error("worker_down", rbuf, rlen) : -1;
    if (len + 10 > s->max_frame)
        return wrapped ? wrapped_pb_error("frame_too_large", rbuf, rlen) : -1;
    note_caller(s);
    id = new_id(s);
    put32(c, cmd);
    mk_hdr(h, op, wrapped ? FL_WRAPPED : 0, id, 4 + len);
    iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
    iov[1].iov_base = c; iov[1].iov_len = 4;
    iov[2].iov_base = buf; iov[2].iov_len = len;
    if (op == PY_CONTROL) s->n_control++; else s->n_call++;
    {
        ErlDrvTime t0 = erl_drv_monotonic_time(ERL_DRV_USEC), us;
        int b = 0;
        w = request(s, iov, 3, id);
        us = erl_drv_monotonic_time(ERL_DRV_USEC) - t0;
        while (b < 31 && (1LL << b) <= us) b++;
        s->lat[b]++;
        if (w == WAIT_TIMEOUT) s->n_late++;
    }
    if (w != WAIT_DONE)
        return wrapped ? wrapped_pb_error(w == WAIT_TIMEOUT ? "timeout" : "worker_down", rbuf, rlen)
                       : -1;
    take_reply(s, &body, &blen);
    if (wrapped || op == PY_CALL) {
        /* an ETF answer: check the version byte, then strip or keep it */
        ErlDrvSSizeT n = -1;
        if (blen >= 2 && (unsigned char)body[0] == 131) {
            if (!wrapped) {
                n = s->got_op == DRV_REPLY ? (ErlDrvSSizeT)blen : -1;
                if (n > 0) memcpy(reply_buf(rbuf, rlen, blen), body, blen);
            } else {
                const char *pre = s->got_op == DRV_REPLY ? ETF_OK : ETF_ERROR;
                size_t pl = s->got_op == DRV_REPLY ? sizeof(ETF_OK) : sizeof(ETF_ERROR);
                char *o = reply_buf(rbuf, rlen, pl + blen - 1);
                memcpy(o, pre, pl);
                memcpy(o + pl, body + 1, blen - 1);
                n = (ErlDrvSSizeT)(pl + blen - 1);
            }
        } else {
            protocol_error(s);
        }
        driver_free(body);
        return n;
    }
    if (s->got_op != DRV_REPLY) {
        driver_free(body);
        return -1;
    }
    if (s->control_flags & PORT_CONTROL_FLAG_BINARY) {
        ErlDrvBinary *b = driver_alloc_binary(blen);
        memcpy(b->orig_bytes, body, blen);
        *rbuf = (char *)b;
    } else {
        memcpy(reply_buf(rbuf, rlen, blen), body, blen);
    }
    driver_free(body);
    return (ErlDrvSSizeT)blen;
}

/* ---- pybridge:info/1: a map of atoms to integers, written as external format ---- */
static size_t etf_pair(char *o, const char *key, ErlDrvUInt64 v)
{
    size_t n = 0, kl = strlen(key);
    int d;
    o[n++] = 119; o[n++] = (char)kl;
    memcpy(o + n, key, kl); n += kl;
    if (v < 256) {
        o[n++] = 97; o[n++] = (char)v;
    } else if (v < 0x80000000u) {
        o[n++] = 98; put32(o + n, (uint32_t)v); n += 4;
    } else {
        o[n++] = 110; o[n++] = 8; o[n++] = 0;   /* SMALL_BIG: 8 little-endian digits */
        for (d = 0; d < 8; d++) o[n++] = (char)(v >> (8 * d));
    }
    return n;
}

/* The bucket's upper bound (us) under which fraction q of the requests finished. */
static ErlDrvUInt64 lat_quantile(pb_port *s, unsigned q)
{
    ErlDrvUInt64 total = 0, seen = 0;
    int b;
    for (b = 0; b < 32; b++) total += s->lat[b];
    if (!total) return 0;
    for (b = 0; b < 32; b++) {
        seen += s->lat[b];
        if (seen * 100 >= total * q) return (ErlDrvUInt64)1 << b;
    }
    return (ErlDrvUInt64)1 << 31;
}

static ErlDrvSSizeT user_info(pb_port *s, char **rbuf, ErlDrvSizeT rlen)
{
    char *o = reply_buf(rbuf, rlen, 1024);
    size_t n = 6;
    o[0] = (char)131; o[1] = 116;
    put32(o + 2, 15);
    n += etf_pair(o + n, "output", s->n_output);
    n += etf_pair(o + n, "control", s->n_control);
    n += etf_pair(o + n, "call", s->n_call);
    n += etf_pair(o + n, "timeout", s->n_timeout);
    n += etf_pair(o + n, "late_answers", s->n_late);
    n += etf_pair(o + n, "bytes_in", s->bytes_in);
    n += etf_pair(o + n, "bytes_out", s->bytes_out);
    n += etf_pair(o + n, "output_queue", s->qbytes);
    n += etf_pair(o + n, "driver_queue", driver_sizeq(s->port));
    n += etf_pair(o + n, "busy", (ErlDrvUInt64)s->busy);
    n += etf_pair(o + n, "os_pid", (ErlDrvUInt64)s->os_pid);
    n += etf_pair(o + n, "monitors", s->nmons);
    n += etf_pair(o + n, "latency_p50_us", lat_quantile(s, 50));
    n += etf_pair(o + n, "latency_p90_us", lat_quantile(s, 90));
    n += etf_pair(o + n, "latency_p99_us", lat_quantile(s, 99));
    return (ErlDrvSSizeT)n;
}

static void user_timeout(pb_port *s)
{
    char g[4];
    if (s->state == S_OPENING) {
        fail_open(s, NULL, 0, "timeout");
    } else if (s->state == S_DEAD) {
        driver_failure_atom(s->port, "pybridge_worker_down");
    } else if (s->state == S_OPEN && s->timer_gen) {
        /* the generation lets Python drop a timeout that crossed a cancel or a new timer */
        put32(g, s->timer_gen);
        s->timer_gen = 0;
        s->n_timeout++;
        if (s->blocking) {
            char h[HDR_LEN];
            struct iovec iov[2];
            uint32_t id = new_id(s);
            mk_hdr(h, PY_TIMEOUT, 0, id, 4);
            iov[0].iov_base = h; iov[0].iov_len = HDR_LEN;
            iov[1].iov_base = g; iov[1].iov_len = 4;
            if (request(s, iov, 2, id) == WAIT_DONE) drop_reply(s);
        } else {
            send_frame(s, PY_TIMEOUT, 0, 0, g, 4);
        }
    }
}

static void user_process_exit(pb_port *s, ErlDrvMonitor *m)
{
    long i = find_monitor(s, m);
    ErlDrvMonitor mine;
    if (i < 0) return;
    /* Python knows the bytes of our copy; ERTS's may differ where the struct is unused */
    mine = s->mons[i];
    drop_monitor(s, i);
    if (s->state == S_OPEN) send_frame(s, PY_PROCESS_EXIT, 0, 0, (char *)&mine, sizeof(mine));
}

/* ERTS closes a port with a non-empty driver queue only once the driver empties it. */
static void user_flush(pb_port *s)
{
    if (s->state == S_OPEN) send_frame(s, PY_FLUSH, 0, 0, NULL, 0);
}

static void user_ready_input(pb_port *s)
{
    if (read_frames(s) > 0) worker_down(s);
}

static void user_ready_output(pb_port *s)
{
    if (q_flush(s) < 0) worker_down(s);
}

/* ------------------------------------------------------------------------ */
/* manager port                                                             */

static void reap(pid_t pid, int *status)
{
    int i;
    *status = -1;
    /* the worker exits on its own once ctl closes; give it 200 ms, then SIGKILL */
    for (i = 0; i < 40; i++) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return;
        usleep(5000);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
}

static void mgr_worker_exit(pb_port *s)
{
    int status = -1;
    char st[4];
    erl_drv_mutex_lock(reg->lock);
    if (s->widx >= 0) reg->workers[s->widx].state = WS_DEAD;
    erl_drv_mutex_unlock(reg->lock);
    if (s->fd >= 0) shutdown(s->fd, SHUT_RDWR);
    if (s->os_pid > 0) {
        reap(s->os_pid, &status);
        s->os_pid = 0;
    }
    close_fd(s);
    erl_drv_mutex_lock(reg->lock);
    if (s->widx >= 0) {
        reg->workers[s->widx].state = WS_FREE;
        reg->workers[s->widx].ctl_fd = -1;
    }
    erl_drv_mutex_unlock(reg->lock);
    s->widx = -1;
    put32(st, (uint32_t)status);
    {
        char h[HDR_LEN + 4];
        mk_hdr(h, CTL_WORKER_EXIT, 0, 0, 4);
        memcpy(h + HDR_LEN, st, 4);
        driver_output(s->port, h, sizeof(h));
    }
}

static ErlDrvSSizeT mgr_spawn(pb_port *s, char *buf, size_t len, char **rbuf, ErlDrvSizeT rlen)
{
    char *argv[64], *a, *end = buf + len;
    int argc = 0, sv[2], fd, i, slot = -1;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    unsigned timeout, spin_us;
    uint32_t max_frame;
    if (s->widx >= 0 || len < 13 || buf[len - 1] != 0) return -1;
    timeout = get32(buf);
    max_frame = get32(buf + 4);
    spin_us = get32(buf + 8);
    for (a = buf + 12; a < end && argc < 63; a += strlen(a) + 1)
        argv[argc++] = a;
    argv[argc] = NULL;
    if (argc == 0) return -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    /* keep the child's end off fd 3, so that dup2 onto 3 really clears close-on-exec */
    fd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 3);
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    i = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (i != 0) {
        close(sv[0]);
        return -1;
    }
    {
        /* ctl sends block only briefly: a stuck worker must not stall a scheduler */
        struct timeval tv = { 0, 200000 };
        setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    erl_drv_mutex_lock(reg->lock);
    for (i = 0; i < MAX_WORKERS; i++)
        if (reg->workers[i].state == WS_FREE) { slot = i; break; }
    if (slot >= 0) {
        pb_worker *w = &reg->workers[slot];
        w->state = WS_HANDSHAKE;
        w->ctl_fd = sv[0];
        w->pid = pid;
        w->gen++;
        w->nports = 0;
        w->timeout_ms = timeout ? timeout : DEFAULT_TIMEOUT_MS;
        w->max_frame = max_frame >= 64 ? max_frame : MAX_FRAME;
        w->spin_us = spin_us > SPIN_MAX_US ? SPIN_MAX_US : spin_us;
        w->notify = driver_caller(s->port);
    }
    erl_drv_mutex_unlock(reg->lock);
    s->fd = sv[0];
    s->os_pid = pid;
    if (slot < 0) {
        mgr_worker_exit(s);
        return -1;
    }
    s->widx = slot;
    driver_select(s->port, (ErlDrvEvent)(long)s->fd, ERL_DRV_READ | ERL_DRV_USE, 1);
    {
        char m[HDR_LEN + 2 + sizeof(PB_DRIVER_VERSION) - 1];
        mk_hdr(m, CTL_HELLO, 0, 0, sizeof(m) - HDR_LEN);
        m[HDR_LEN] = 0;
        m[HDR_LEN + 1] = PB_PROTOCOL_VERSION;
        memcpy(m + HDR_LEN + 2, PB_DRIVER_VERSION, sizeof(PB_DRIVER_VERSION) - 1);
        if (send(s->fd, m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
            mgr_worker_exit(s);
            return -1;
        }
    }
    {
        char *o = reply_buf(rbuf, rlen, 8);
        put32(o, (uint32_t)pid);
        put32(o + 4, (uint32_t)slot);
    }
    return 8;
}

static void mgr_ready_input(pb_port *s)
{
    for (;;) {
        char buf[65536];
        ssize_t r = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            mgr_worker_exit(s);
            return;
        }
        if (r < HDR_LEN || get32(buf) != (uint32_t)r - 4) continue;   /* not a frame: ignore */
        if (buf[4] == CTL_HELLO) {
            int ok = r >= HDR_LEN + 2 && buf[HDR_LEN] == 0 && buf[HDR_LEN + 1] == PB_PROTOCOL_VERSION;
            erl_drv_mutex_lock(reg->lock);
            if (ok && reg->workers[s->widx].state == WS_HANDSHAKE) reg->workers[s->widx].state = WS_LIVE;
            erl_drv_mutex_unlock(reg->lock);
        }
        driver_output(s->port, buf, (ErlDrvSizeT)r);
    }
}

/* port_command on the manager port: whole ctl frames for the worker (CTL_PID_INFO,
 * CTL_CLASS_INFO). */
static void mgr_output(pb_port *s, ErlIOVec *ev)
{
    char *buf;
    if (s->fd < 0 || ev->size < HDR_LEN) return;
    buf = driver_alloc(ev->size);
    driver_vec_to_buf(ev, buf, ev->size);
    if (get32(buf) == ev->size - 4 && (buf[4] == CTL_PID_INFO || buf[4] == CTL_CLASS_INFO))
        send(s->fd, buf, ev->size, MSG_NOSIGNAL);
    driver_free(buf);
}

static void mgr_stop(pb_port *s)
{
    if (s->widx >= 0) mgr_worker_exit(s);
}

/* ------------------------------------------------------------------------ */
/* driver entry                                                             */

static int pb_init(void)
{
    int i;
    fd_limit = sysconf(_SC_OPEN_MAX) > 0 ? (int)sysconf(_SC_OPEN_MAX) : 1024;
    if (drv_spec[0]) {
        /* a named driver: the original (loaded by pybridge_sup) keeps the workers */
        if (!(main_handle = dlopen(main_so_path, RTLD_NOW | RTLD_NOLOAD))) return -1;
        if (!(reg = dlsym(main_handle, "pybridge_registry")) || !reg->lock) {
            dlclose(main_handle);
            return -1;
        }
        erl_drv_mutex_lock(reg->lock);
        reg->copies++;
        erl_drv_mutex_unlock(reg->lock);
        return 0;
    }
    reg = &pybridge_registry;
    reg->lock = erl_drv_mutex_create("pybridge_workers");
    for (i = 0; i < MAX_WORKERS; i++) {
        reg->workers[i].state = WS_FREE;
        reg->workers[i].ctl_fd = -1;
    }
    return reg->lock ? 0 : -1;
}

static void pb_finish(void)
{
    if (main_handle) {
        erl_drv_mutex_lock(reg->lock);
        reg->copies--;
        erl_drv_mutex_unlock(reg->lock);
        dlclose(main_handle);
        return;
    }
    /* named drivers hold the original loaded (dlopen), so it only goes after them */
    erl_drv_mutex_destroy(reg->lock);
    reg->lock = NULL;
}

static ErlDrvData pb_start(ErlDrvPort port, char *cmd)
{
    if (!drv_spec[0] && !strcmp(cmd, "pybridge --manager")) {
        pb_port *s = driver_alloc(sizeof(*s));
        memset(s, 0, sizeof(*s));
        s->port = port;
        s->port_term = driver_mk_port(port);
        s->kind = K_MANAGER;
        s->state = S_OPEN;
        s->fd = s->wfd = -1;
        s->widx = -1;
        /* an ack from inside start is lost: acknowledge from the first timeout */
        driver_set_timer(port, 0);
        return (ErlDrvData)s;
    }
    return user_start(port, cmd);
}

/*
 * driver_failure*, erl_drv_init_ack(error) and friends run stop at once, from inside the
 * callback that called them. So every callback counts itself in, and a stop that comes
 * while one runs releases the socket and the worker but leaves the memory to the
 * outermost callback, which frees it on its way out.
 */
#define ENTER(s) ((s)->depth++)
#define LEAVE(s) do { if (--(s)->depth == 0 && (s)->zombie) free_port(s); } while (0)

static void pb_stop(ErlDrvData d)
{
    pb_port *s = (pb_port *)d;
    if (s->kind == K_MANAGER) mgr_stop(s); else user_stop(s);
    if (s->depth) s->zombie = 1; else free_port(s);
}

static void pb_outputv(ErlDrvData d, ErlIOVec *ev)
{
    pb_port *s = (pb_port *)d;
    ENTER(s);
    if (s->kind == K_MANAGER) mgr_output(s, ev); else user_outputv(s, ev);
    LEAVE(s);
}

static ErlDrvSSizeT pb_control(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                               char **rbuf, ErlDrvSizeT rlen)
{
    pb_port *s = (pb_port *)d;
    ErlDrvSSizeT r;
    ENTER(s);
    if (s->kind == K_MANAGER)
        r = cmd == MGR_SPAWN ? mgr_spawn(s, buf, len, rbuf, rlen) : -1;
    else
        r = user_request(s, PY_CONTROL, 0, cmd, buf, len, rbuf, rlen);
    LEAVE(s);
    return r;
}

static ErlDrvSSizeT pb_call(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                            char **rbuf, ErlDrvSizeT rlen, unsigned int *flags)
{
    pb_port *s = (pb_port *)d;
    ErlDrvSSizeT r;
    (void)flags;
    ENTER(s);
    if (s->kind == K_MANAGER ||
        (cmd >= 0xFFFFFF00u && cmd != PB_CALL_CONTROL && cmd != PB_CALL_CALL && cmd != PB_CALL_INFO))
        r = -1;
    else if (cmd == PB_CALL_CONTROL)
        r = user_request(s, PY_CONTROL, 1, 0, buf, len, rbuf, rlen);
    else if (cmd == PB_CALL_CALL)
        r = user_request(s, PY_CALL, 1, 0, buf, len, rbuf, rlen);
    else if (cmd == PB_CALL_INFO)
        r = user_info(s, rbuf, rlen);
    else
        r = user_request(s, PY_CALL, 0, cmd, buf, len, rbuf, rlen);
    LEAVE(s);
    return r;
}

static void pb_ready_input(ErlDrvData d, ErlDrvEvent e)
{
    pb_port *s = (pb_port *)d;
    (void)e;
    ENTER(s);
    if (s->fd >= 0) {
        if (s->kind == K_MANAGER) mgr_ready_input(s); else user_ready_input(s);
    }
    LEAVE(s);
}

static void pb_ready_output(ErlDrvData d, ErlDrvEvent e)
{
    pb_port *s = (pb_port *)d;
    (void)e;
    ENTER(s);
    if (s->wfd >= 0 && s->kind == K_USER) user_ready_output(s);
    LEAVE(s);
}

static void pb_timeout(ErlDrvData d)
{
    pb_port *s = (pb_port *)d;
    ENTER(s);
    if (s->kind == K_USER) user_timeout(s);
    else erl_drv_init_ack(s->port, d);
    LEAVE(s);
}

static void pb_flush(ErlDrvData d)
{
    pb_port *s = (pb_port *)d;
    ENTER(s);
    if (s->kind == K_USER) user_flush(s);
    LEAVE(s);
}

static void pb_process_exit(ErlDrvData d, ErlDrvMonitor *m)
{
    pb_port *s = (pb_port *)d;
    ENTER(s);
    if (s->kind == K_USER) user_process_exit(s, m);
    LEAVE(s);
}

static void pb_stop_select(ErlDrvEvent e, void *reserved)
{
    (void)reserved;
    close((int)(long)e);
}

static ErlDrvEntry pb_entry = {
    pb_init,
    pb_start,
    pb_stop,
    NULL,                                /* output: outputv is always used */
    pb_ready_input,
    pb_ready_output,
    "pybridge",
    pb_finish,
    NULL,                                /* handle */
    pb_control,
    pb_timeout,
    pb_outputv,
    NULL,                                /* ready_async */
    pb_flush,
    pb_call,
    NULL,                                /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    ERL_DRV_FLAG_USE_PORT_LOCKING | ERL_DRV_FLAG_USE_INIT_ACK,
    NULL,                                /* handle2 */
    pb_process_exit,
    pb_stop_select,
    NULL                                 /* emergency_close */
};

static int read_line(FILE *f, char *buf, size_t n)
{
    size_t l;
    if (!fgets(buf, (int)n, f)) return -1;
    l = strlen(buf);
    if (l == 0 || buf[l - 1] != '\n') return -1;
    buf[l - 1] = 0;
    return l > 1 ? 0 : -1;
}

/*
 * Loaded as NAME.so (a copy made by pybridge:load_driver), the driver reads NAME.conf
 * beside it: the name, the "module:Class" it serves, the class's driver flags and the
 * path of the original pybridge.so. Without a valid one it keeps the name "pybridge",
 * which makes erl_ddll refuse the load.
 */
static void pb_configure(void)
{
    Dl_info info;
    char conf[4096], name[256], spec[512], flags[32], main_so[4096];
    const char *base;
    size_t l;
    FILE *f;
    unsigned long fl;
    if (!dladdr((void *)&pb_entry, &info) || !info.dli_fname) return;
    base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    l = strlen(info.dli_fname);
    if (!strcmp(base, "pybridge.so") || l < 4 || l + 3 > sizeof(conf)) return;
    memcpy(conf, info.dli_fname, l - 3);
    memcpy(conf + l - 3, ".conf", 6);
    if (!(f = fopen(conf, "re"))) return;
    if (read_line(f, name, sizeof(name)) == 0 && read_line(f, spec, sizeof(spec)) == 0 &&
        read_line(f, flags, sizeof(flags)) == 0 && read_line(f, main_so, sizeof(main_so)) == 0) {
        fl = strtoul(flags, NULL, 10);
        memcpy(drv_name, name, sizeof(drv_name));
        memcpy(drv_spec, spec, sizeof(drv_spec));
        memcpy(main_so_path, main_so, sizeof(main_so_path));
        pb_entry.driver_name = drv_name;
        pb_entry.driver_flags |= (int)(fl & (ERL_DRV_FLAG_SOFT_BUSY | ERL_DRV_FLAG_NO_BUSY_MSGQ));
    }
    fclose(f);
}

DRIVER_INIT(pybridge)
{
    pb_configure();
    return &pb_entry;
}
