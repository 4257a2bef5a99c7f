/*
 * manager.c - pybridge_manager.so, the manager ports' driver: open_port({spawn_driver,
 * "pybridge_manager"}, [binary]), one per worker, owned by its pybridge_manager process.
 * It spawns the worker through its nanny (MGR_SPAWN), holds its ctl socket, relays ctl
 * frames both ways (those to the worker queued, never blocking), watches the worker's end
 * and reports its wait status (docs/PROTOCOL.md, "ctl channel opcodes", "Handshake",
 * "Manager port controls", "The nanny").
 *
 * Why three descriptors are watched: ctl EOF comes late or never when a child the driver
 * forked holds the worker's ctl socket, so the worker's end is what the nanny says on
 * the status pipe (it waits for the worker), and the nanny's pidfd, when it is killed.
 *
 * Built from the same sources as pybridge.so, it is a driver of its own because
 * erl_ddll loads one erl_drv_entry per file; the registry of workers it adds to is
 * pybridge.so's, which pybridge_sup loads first, in the same directory.
 */
#define _GNU_SOURCE                      /* kill with -std=c11 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pybridge_protocol.h"
#include "spawn.h"
#include "workers.h"

#define MAX_ARGS 64
#define SPAWN_FIXED 16                   /* timeout_ms max_frame spin_us group: u32 each */
#define EOF_GRACE_MS 200                 /* ctl closed: the worker has this long to exit */
#define STOP_GRACE_MS 200

typedef struct {
    pb_common c;                         /* DON'T MOVE: the part every port kind has */
    int ctl_fd;                          /* -1 until MGR_SPAWN, and after the worker exits */
    int status_fd;                       /* the nanny's status pipe, or -1 */
    int pidfd;                           /* the nanny's pidfd, or -1 */
} pb_manager;

static ErlDrvEntry manager_entry;

static void unwatch(pb_manager *m, int *fd)
{
    /* stop_select closes it once ERTS no longer polls it */
    if (*fd >= 0)
        driver_select(m->c.port, (ErlDrvEvent)(long)*fd,
                      ERL_DRV_READ | ERL_DRV_WRITE | ERL_DRV_USE, 0);
    *fd = -1;
}

/* The frames for the worker that waited in the port's queue: nobody will read them now. */
static void drop_queue(pb_manager *m)
{
    ErlDrvSizeT n = driver_sizeq(m->c.port);
    if (n > 0) driver_deq(m->c.port, n);
}

/* n bytes from the front of the port's queue into dst (the queue holds at least n) */
static void copy_queued(ErlDrvPort port, char *dst, size_t n)
{
    int vlen, i;
    SysIOVec *v = driver_peekq(port, &vlen);
    for (i = 0; i < vlen && n > 0; i++) {
        size_t k = v[i].iov_len < n ? v[i].iov_len : n;
        memcpy(dst, v[i].iov_base, k);
        dst += k;
        n -= k;
    }
}

/*
 * Write the queued frames, one ctl message each, while the socket takes them without
 * blocking; watch for writability while some wait. Why a queue: the senders are Erlang
 * processes (call_erlang's answers, pid resolutions) that must neither block a scheduler
 * on a worker that reads ctl late nor lose a frame.
 */
static void write_queued(pb_manager *m)
{
    char buf[MAX_CTL_MSG];
    while (m->ctl_fd >= 0 && driver_sizeq(m->c.port) >= 4) {
        size_t len;
        ssize_t w;
        copy_queued(m->c.port, buf, 4);
        len = (size_t)get32(buf) + 4;
        copy_queued(m->c.port, buf, len);
        w = send(m->ctl_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            driver_select(m->c.port, (ErlDrvEvent)(long)m->ctl_fd, ERL_DRV_WRITE, 1);
            return;
        }
        if (w < 0) {                     /* the worker is going: its end is reported */
            drop_queue(m);
            break;
        }
        driver_deq(m->c.port, (ErlDrvSizeT)len);
    }
    if (m->ctl_fd >= 0)
        driver_select(m->c.port, (ErlDrvEvent)(long)m->ctl_fd, ERL_DRV_WRITE, 0);
}

static void mgr_ready_input(ErlDrvData d, ErlDrvEvent e);

/*
 * {pybridge_port_opened, Port, Spec} to pybridge_manager for the port of that serial (0:
 * every one not yet told), sent by this manager port: the user port's own signals show
 * nothing of the bridge.
 */
static void announce(pb_manager *m, uint32_t serial)
{
    pb_opened o;
    while (pb_worker_take_opened(m->c.worker, serial, &o)) {
        ErlDrvTermData t[9] = { ERL_DRV_ATOM, driver_mk_atom("pybridge_port_opened"),
                                ERL_DRV_PORT, o.port,
                                ERL_DRV_BUF2BINARY, (ErlDrvTermData)o.spec,
                                (ErlDrvTermData)strlen(o.spec), ERL_DRV_TUPLE, 3 };
        erl_drv_output_term(driver_mk_port(m->c.port), t, 9);
        if (serial) return;
    }
}

/*
 * The worker is gone, with this wait status: pass on the ctl frames it sent last (its
 * traceback), forget it, and tell Erlang CTL_WORKER_EXIT: the status, how many ports
 * waited for it, and the class of the one that waited longest.
 */
static void worker_gone(pb_manager *m, int status)
{
    char h[HDR_LEN + 8 + PB_SPEC_MAX];
    int busy = pb_worker_blame(m->c.worker, h + HDR_LEN + 8);
    size_t blen = strlen(h + HDR_LEN + 8);
    pb_worker_dying(m->c.worker);
    if (m->ctl_fd >= 0) mgr_ready_input((ErlDrvData)m, (ErlDrvEvent)(long)m->ctl_fd);
    announce(m, 0);                      /* so that they exit with the others */
    drop_queue(m);
    unwatch(m, &m->ctl_fd);
    unwatch(m, &m->status_fd);
    unwatch(m, &m->pidfd);
    driver_cancel_timer(m->c.port);
    m->c.os_pid = 0;
    pb_worker_remove(m->c.worker);
    m->c.worker = PB_NO_WORKER;
    mk_hdr(h, CTL_WORKER_EXIT, 0, 0, 8 + blen);
    put32(h + HDR_LEN, (uint32_t)status);
    put32(h + HDR_LEN + 4, (uint32_t)busy);
    driver_output(m->c.port, h, HDR_LEN + 8 + blen);
}

/* ctl closed or failed: no new ports; the worker is ending, or is made to (mgr_timeout). */
static void ctl_closed(pb_manager *m)
{
    pb_worker_dying(m->c.worker);
    if (m->ctl_fd >= 0) shutdown(m->ctl_fd, SHUT_RDWR);
    drop_queue(m);
    unwatch(m, &m->ctl_fd);
    if (m->status_fd >= 0) driver_set_timer(m->c.port, EOF_GRACE_MS);
}

/* CTL_HELLO: proto:u16, then the driver's version */
static int send_hello(pb_manager *m)
{
    char h[HDR_LEN + 2 + sizeof(PB_DRIVER_VERSION) - 1];
    mk_hdr(h, CTL_HELLO, 0, 0, sizeof(h) - HDR_LEN);
    h[HDR_LEN] = 0;
    h[HDR_LEN + 1] = PB_PROTOCOL_VERSION;
    memcpy(h + HDR_LEN + 2, PB_DRIVER_VERSION, sizeof(PB_DRIVER_VERSION) - 1);
    return send(m->ctl_fd, h, sizeof(h), MSG_NOSIGNAL) == (ssize_t)sizeof(h) ? 0 : -1;
}

/*
 * MGR_SPAWN: timeout_ms:u32 max_frame:u32 spin_us:u32 group:u32, then the nanny's argv as
 * NUL-terminated strings. Reply os_pid:u32 (the worker's) worker_index:u32. The worker's
 * argv gets "--node-pid-raw RAW", the raw value of the caller (pybridge_manager), whose
 * external form its argv has already (--node-pid): Python makes every pid's external
 * form from these two (docs/PROTOCOL.md, "Pids").
 */
static ErlDrvSSizeT spawn_worker(pb_manager *m, char *buf, size_t len, char **rbuf,
                                 ErlDrvSizeT rlen)
{
    char *argv[MAX_ARGS], *a, *end = buf + len, *o, raw[24];
    int argc = 0;
    pb_worker_conf conf;
    pb_spawned sp;
    if (m->ctl_fd >= 0 || m->status_fd >= 0 || len < SPAWN_FIXED + 1 || buf[len - 1] != 0)
        return -1;
    conf.timeout_ms = get32(buf) ? get32(buf) : DEFAULT_TIMEOUT_MS;
    conf.max_frame = get32(buf + 4) >= MIN_MAX_FRAME ? get32(buf + 4) : DEFAULT_MAX_FRAME;
    conf.spin_us = get32(buf + 8) > MAX_SPIN_US ? MAX_SPIN_US : get32(buf + 8);
    conf.group = get32(buf + 12);
    conf.notify = driver_caller(m->c.port);
    for (a = buf + SPAWN_FIXED; a < end && argc < MAX_ARGS - 3; a += strlen(a) + 1)
        argv[argc++] = a;
    if (argc == 0) return -1;
    snprintf(raw, sizeof(raw), "%llu", (unsigned long long)conf.notify);
    argv[argc++] = "--node-pid-raw";
    argv[argc++] = raw;
    argv[argc] = NULL;
    if (pb_spawn(argv, &sp) < 0) return -1;
    m->c.os_pid = sp.worker;
    m->ctl_fd = sp.ctl_fd;
    m->status_fd = sp.status_fd;
    m->pidfd = sp.pidfd;
    driver_select(m->c.port, (ErlDrvEvent)(long)m->ctl_fd, ERL_DRV_READ | ERL_DRV_USE, 1);
    driver_select(m->c.port, (ErlDrvEvent)(long)m->status_fd, ERL_DRV_READ | ERL_DRV_USE, 1);
    if (m->pidfd >= 0)
        driver_select(m->c.port, (ErlDrvEvent)(long)m->pidfd, ERL_DRV_READ | ERL_DRV_USE, 1);
    if (pb_worker_add(m->c.os_pid, m->ctl_fd, &conf, &m->c.worker) < 0 || send_hello(m) < 0) {
        kill(m->c.os_pid, SIGKILL);
        ctl_closed(m);                   /* CTL_WORKER_EXIT follows, from the status pipe */
    }
    o = *rbuf;
    if (rlen < 8) o = *rbuf = driver_alloc(8);
    put32(o, (uint32_t)m->c.os_pid);
    put32(o + 4, (uint32_t)m->c.worker.slot);
    return 8;
}

static ErlDrvData mgr_start(ErlDrvPort port, char *cmd)
{
    pb_manager *m = driver_alloc(sizeof(*m));
    (void)cmd;
    memset(m, 0, sizeof(*m));
    m->c.port = port;
    m->c.worker = PB_NO_WORKER;
    m->ctl_fd = m->status_fd = m->pidfd = -1;
    return (ErlDrvData)m;
}

/* The worker exits on ctl EOF; it is killed if it does not within STOP_GRACE_MS. */
static void mgr_stop(ErlDrvData d)
{
    pb_manager *m = (pb_manager *)d;
    pb_worker_dying(m->c.worker);
    if (m->ctl_fd >= 0) shutdown(m->ctl_fd, SHUT_RDWR);
    if (m->status_fd >= 0) pb_await_status(m->status_fd, m->c.os_pid, STOP_GRACE_MS);
    unwatch(m, &m->ctl_fd);
    unwatch(m, &m->status_fd);
    unwatch(m, &m->pidfd);
    pb_worker_remove(m->c.worker);
    driver_free(m);
}

/* ctl closed EOF_GRACE_MS ago and the worker is still there: it goes. */
static void mgr_timeout(ErlDrvData d)
{
    pb_manager *m = (pb_manager *)d;
    if (m->status_fd >= 0 && m->c.os_pid > 0) kill(m->c.os_pid, SIGKILL);
}

static ErlDrvSSizeT mgr_control(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen)
{
    return cmd == MGR_SPAWN ? spawn_worker((pb_manager *)d, buf, len, rbuf, rlen) : -1;
}

/*
 * The status pipe or the nanny's pidfd: the worker's end (its status; -1 if the nanny was
 * killed, which kills the worker). ctl: every frame from the worker goes to Erlang as port
 * data; a matching CTL_HELLO also makes the worker live.
 */
static void mgr_ready_input(ErlDrvData d, ErlDrvEvent e)
{
    pb_manager *m = (pb_manager *)d;
    int fd = (int)(long)e, status;
    if (fd >= 0 && (fd == m->status_fd || fd == m->pidfd)) {
        /* the nanny writes the status before it exits: a readable pidfd finds it there */
        if (m->status_fd >= 0 && pb_read_status(m->status_fd, &status) >= 0)
            worker_gone(m, status);
        return;
    }
    while (m->ctl_fd >= 0 && fd == m->ctl_fd) {
        char buf[MAX_CTL_MSG];
        ssize_t r = recv(m->ctl_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            ctl_closed(m);
            return;
        }
        if (r < HDR_LEN || get32(buf) != (uint32_t)r - 4) continue;   /* not a frame: ignore */
        if (buf[4] == CTL_PORT_OPENED) {
            announce(m, get32(buf + 6));
            continue;
        }
        if (buf[4] == CTL_HELLO && r >= HDR_LEN + 2 && buf[HDR_LEN] == 0 &&
            buf[HDR_LEN + 1] == PB_PROTOCOL_VERSION)
            pb_worker_live(m->c.worker);
        driver_output(m->c.port, buf, (ErlDrvSizeT)r);
    }
}

/* port_command on the manager port: one whole ctl frame for the worker (CTL_CLASS_INFO,
 * CTL_RELOAD, CTL_ERL_RESULT), queued behind those that wait. Others are ignored. */
static void mgr_outputv(ErlDrvData d, ErlIOVec *ev)
{
    pb_manager *m = (pb_manager *)d;
    char h[HDR_LEN];
    if (m->ctl_fd < 0 || ev->size < HDR_LEN || ev->size > MAX_CTL_MSG) return;
    driver_vec_to_buf(ev, h, HDR_LEN);
    if (get32(h) != ev->size - 4 ||
        (h[4] != CTL_CLASS_INFO && h[4] != CTL_RELOAD && h[4] != CTL_ERL_RESULT))
        return;
    driver_enqv(m->c.port, ev, 0);
    write_queued(m);
}

static void mgr_ready_output(ErlDrvData d, ErlDrvEvent e)
{
    (void)e;
    write_queued((pb_manager *)d);
}

/* The port closes with frames queued: the worker goes with it, nobody reads them. */
static void mgr_flush(ErlDrvData d)
{
    drop_queue((pb_manager *)d);
}

static void mgr_stop_select(ErlDrvEvent e, void *reserved)
{
    (void)reserved;
    close((int)(long)e);
}

static int mgr_init(void)
{
    return pb_workers_attach_beside((const void *)&manager_entry);
}

static void mgr_finish(void)
{
    pb_workers_detach();
}

static ErlDrvEntry manager_entry = {
    mgr_init,
    mgr_start,
    mgr_stop,
    NULL,                                /* output: outputv is always used */
    mgr_ready_input,
    mgr_ready_output,
    "pybridge_manager",
    mgr_finish,
    NULL,                                /* handle */
    mgr_control,
    mgr_timeout,
    mgr_outputv,
    NULL,                                /* ready_async */
    mgr_flush,
    NULL,                                /* call */
    NULL,                                /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    ERL_DRV_FLAG_USE_PORT_LOCKING,
    NULL,                                /* handle2 */
    NULL,                                /* process_exit */
    mgr_stop_select,
    NULL                                 /* emergency_close */
};

DRIVER_INIT(pybridge_manager)
{
    return &manager_entry;
}
