/*
 * manager.c - pybridge_manager.so, the manager ports' driver: open_port({spawn_driver,
 * "pybridge_manager"}, [binary]), one per worker, owned by its pybridge_manager process.
 * It spawns the worker (MGR_SPAWN), holds its ctl socket, relays ctl frames both ways
 * and reports the worker's exit (docs/PROTOCOL.md, "ctl channel opcodes", "Handshake",
 * "Manager port controls").
 *
 * Built from the same sources as pybridge.so, it is a driver of its own because
 * erl_ddll loads one erl_drv_entry per file; the registry of workers it adds to is
 * pybridge.so's, which pybridge_sup loads first, in the same directory.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pybridge_protocol.h"
#include "spawn.h"
#include "workers.h"

#define MAX_ARGS 64
#define SPAWN_FIXED 12                   /* timeout_ms:u32 max_frame:u32 spin_us:u32 */
#define CTL_MSG_MAX 65536

typedef struct {
    pb_common c;                         /* DON'T MOVE: the part every port kind has */
    int ctl_fd;                          /* -1 until MGR_SPAWN, and after the worker exits */
} pb_manager;

static ErlDrvEntry manager_entry;

/* The worker is gone or going: close ctl, reap it, tell Erlang CTL_WORKER_EXIT(status). */
static void worker_exit(pb_manager *m)
{
    int status = -1;
    char h[HDR_LEN + 4];
    pb_worker_dying(m->c.worker);
    if (m->ctl_fd >= 0) shutdown(m->ctl_fd, SHUT_RDWR);
    if (m->c.os_pid > 0) {
        status = pb_reap(m->c.os_pid);
        m->c.os_pid = 0;
    }
    if (m->ctl_fd >= 0) {
        /* stop_select closes it once ERTS no longer polls it */
        driver_select(m->c.port, (ErlDrvEvent)(long)m->ctl_fd, ERL_DRV_READ | ERL_DRV_USE, 0);
        m->ctl_fd = -1;
    }
    pb_worker_remove(m->c.worker);
    m->c.worker = PB_NO_WORKER;
    mk_hdr(h, CTL_WORKER_EXIT, 0, 0, 4);
    put32(h + HDR_LEN, (uint32_t)status);
    driver_output(m->c.port, h, sizeof(h));
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
 * MGR_SPAWN: timeout_ms:u32 max_frame:u32 spin_us:u32, then the argv as NUL-terminated
 * strings. Reply os_pid:u32 worker_index:u32.
 */
static ErlDrvSSizeT spawn_worker(pb_manager *m, char *buf, size_t len, char **rbuf,
                                 ErlDrvSizeT rlen)
{
    char *argv[MAX_ARGS], *a, *end = buf + len, *o;
    int argc = 0;
    pb_worker_conf conf;
    if (m->ctl_fd >= 0 || len < SPAWN_FIXED + 1 || buf[len - 1] != 0) return -1;
    conf.timeout_ms = get32(buf) ? get32(buf) : DEFAULT_TIMEOUT_MS;
    conf.max_frame = get32(buf + 4) >= MIN_MAX_FRAME ? get32(buf + 4) : DEFAULT_MAX_FRAME;
    conf.spin_us = get32(buf + 8) > MAX_SPIN_US ? MAX_SPIN_US : get32(buf + 8);
    conf.notify = driver_caller(m->c.port);
    for (a = buf + SPAWN_FIXED; a < end && argc < MAX_ARGS - 1; a += strlen(a) + 1)
        argv[argc++] = a;
    argv[argc] = NULL;
    if (argc == 0 || pb_spawn(argv, &m->c.os_pid, &m->ctl_fd) < 0) return -1;
    if (pb_worker_add(m->c.os_pid, m->ctl_fd, &conf, &m->c.worker) < 0) {
        worker_exit(m);
        return -1;
    }
    driver_select(m->c.port, (ErlDrvEvent)(long)m->ctl_fd, ERL_DRV_READ | ERL_DRV_USE, 1);
    if (send_hello(m) < 0) {
        worker_exit(m);
        return -1;
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
    m->ctl_fd = -1;
    return (ErlDrvData)m;
}

static void mgr_stop(ErlDrvData d)
{
    pb_manager *m = (pb_manager *)d;
    if (m->c.worker.slot >= 0) worker_exit(m);
    driver_free(m);
}

static ErlDrvSSizeT mgr_control(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen)
{
    return cmd == MGR_SPAWN ? spawn_worker((pb_manager *)d, buf, len, rbuf, rlen) : -1;
}

/* Every ctl frame from the worker goes to Erlang as port data; a matching CTL_HELLO
 * also makes the worker live. */
static void mgr_ready_input(ErlDrvData d, ErlDrvEvent e)
{
    pb_manager *m = (pb_manager *)d;
    (void)e;
    while (m->ctl_fd >= 0) {
        char buf[CTL_MSG_MAX];
        ssize_t r = recv(m->ctl_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            worker_exit(m);
            return;
        }
        if (r < HDR_LEN || get32(buf) != (uint32_t)r - 4) continue;   /* not a frame: ignore */
        if (buf[4] == CTL_HELLO && r >= HDR_LEN + 2 && buf[HDR_LEN] == 0 &&
            buf[HDR_LEN + 1] == PB_PROTOCOL_VERSION)
            pb_worker_live(m->c.worker);
        driver_output(m->c.port, buf, (ErlDrvSizeT)r);
    }
}

/* port_command on the manager port: whole ctl frames for the worker (CTL_PID_INFO,
 * CTL_CLASS_INFO). */
static void mgr_outputv(ErlDrvData d, ErlIOVec *ev)
{
    pb_manager *m = (pb_manager *)d;
    char *buf;
    if (m->ctl_fd < 0 || ev->size < HDR_LEN) return;
    buf = driver_alloc(ev->size);
    driver_vec_to_buf(ev, buf, ev->size);
    if (get32(buf) == ev->size - 4 && (buf[4] == CTL_PID_INFO || buf[4] == CTL_CLASS_INFO))
        send(m->ctl_fd, buf, ev->size, MSG_NOSIGNAL);
    driver_free(buf);
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
    NULL,                                /* ready_output: ctl sends do not queue */
    "pybridge_manager",
    mgr_finish,
    NULL,                                /* handle */
    mgr_control,
    NULL,                                /* timeout */
    mgr_outputv,
    NULL,                                /* ready_async */
    NULL,                                /* flush */
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
