/*
 * workers.c - the registry of Python workers (see workers.h), and passing descriptors to
 * a worker over its ctl socket (CTL_NEW_PORT, CTL_SHM: docs/PROTOCOL.md).
 *
 * Every access holds the registry's lock: manager ports and user ports of any of the
 * .so files run on any scheduler.
 */
#define _GNU_SOURCE                      /* RTLD_NOLOAD, dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "pybridge_protocol.h"
#include "workers.h"

const pb_worker_ref PB_NO_WORKER = { -1, 0 };

static pb_registry *reg;
static void *owner_handle;               /* an attached .so's hold on pybridge.so */

int pb_workers_create(pb_registry *r)
{
    int i;
    reg = r;
    reg->lock = erl_drv_mutex_create("pybridge_workers");
    for (i = 0; i < MAX_WORKERS; i++) {
        reg->workers[i].state = WS_FREE;
        reg->workers[i].ctl_fd = -1;
    }
    return reg->lock ? 0 : -1;
}

void pb_workers_destroy(void)
{
    /* the attached .so files hold pybridge.so loaded (dlopen), so this runs after them */
    erl_drv_mutex_destroy(reg->lock);
    reg->lock = NULL;
}

int pb_workers_attach(const char *pybridge_so)
{
    /* RTLD_NOLOAD: only the pybridge.so erl_ddll loaded has the live registry */
    if (!(owner_handle = dlopen(pybridge_so, RTLD_NOW | RTLD_NOLOAD))) return -1;
    if (!(reg = dlsym(owner_handle, "pybridge_registry")) || !reg->lock) {
        dlclose(owner_handle);
        owner_handle = NULL;
        return -1;
    }
    return 0;
}

/* pybridge_manager.so: the pybridge.so in the directory of the .so that holds `self`. */
int pb_workers_attach_beside(const void *self)
{
    Dl_info info;
    char path[4096];
    const char *slash;
    size_t dl;
    if (!dladdr(self, &info) || !info.dli_fname) return -1;
    slash = strrchr(info.dli_fname, '/');
    dl = slash ? (size_t)(slash - info.dli_fname) + 1 : 0;
    if (dl + sizeof("pybridge.so") > sizeof(path)) return -1;
    memcpy(path, info.dli_fname, dl);
    memcpy(path + dl, "pybridge.so", sizeof("pybridge.so"));
    return pb_workers_attach(path);
}

void pb_workers_detach(void)
{
    dlclose(owner_handle);
    owner_handle = NULL;
}

/* The worker w names, if it is still that one; the lock is held. */
static pb_worker *lookup(pb_worker_ref w)
{
    if (w.slot < 0 || w.slot >= MAX_WORKERS || reg->workers[w.slot].gen != w.gen) return NULL;
    return &reg->workers[w.slot];
}

int pb_worker_add(pid_t pid, int ctl_fd, const pb_worker_conf *conf, pb_worker_ref *out)
{
    int i;
    *out = PB_NO_WORKER;
    erl_drv_mutex_lock(reg->lock);
    for (i = 0; i < MAX_WORKERS; i++) {
        pb_worker *w = &reg->workers[i];
        if (w->state != WS_FREE) continue;
        w->state = WS_HANDSHAKE;
        w->ctl_fd = ctl_fd;
        w->pid = pid;
        w->gen++;
        w->nports = 0;
        w->busy = 0;
        w->blame_serial = w->blame_of = 0;
        w->lost_ms = 0;
        w->suspect_ms = 0;
        w->conf = *conf;
        out->slot = i;
        out->gen = w->gen;
        break;
    }
    erl_drv_mutex_unlock(reg->lock);
    return out->slot >= 0 ? 0 : -1;
}

/* The worker answered CTL_HELLO with our protocol version: it may be given ports. */
void pb_worker_live(pb_worker_ref w)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w)) && k->state == WS_HANDSHAKE) k->state = WS_LIVE;
    erl_drv_mutex_unlock(reg->lock);
}

/* Its ctl socket is closing: no new ports, while the manager reaps the process. */
void pb_worker_dying(pb_worker_ref w)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) k->state = WS_DEAD;
    erl_drv_mutex_unlock(reg->lock);
}

void pb_worker_remove(pb_worker_ref w)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) {
        k->state = WS_FREE;
        k->ctl_fd = -1;
        driver_free(k->opened);
        k->opened = NULL;
        k->nopened = k->copened = 0;
    }
    erl_drv_mutex_unlock(reg->lock);
}

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

/* A port's channel ended: the worker may be dying before its manager port can say so. */
#define SUSPECT_MS 200

static int process_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* Live and not suspected of dying; the lock is held. */
static int takes_ports(pb_worker *k)
{
    if (k->state != WS_LIVE) return 0;
    if (!k->suspect_ms) return 1;
    return erl_drv_monotonic_time(ERL_DRV_MSEC) - k->suspect_ms >= SUSPECT_MS &&
           process_alive(k->pid);
}

/* Which worker takes a new port: never one that is starting, dying or of another
 * group; the lock is held. */
static int pick(pb_worker_ref want, uint32_t group)
{
    int i, best = -1;
    pb_worker *k;
    if (want.slot >= 0) return (k = lookup(want)) && takes_ports(k) ? want.slot : -1;
    for (i = 0; i < MAX_WORKERS; i++)
        if (reg->workers[i].conf.group == group && takes_ports(&reg->workers[i]) &&
            (best < 0 || reg->workers[i].nports < reg->workers[best].nports))
            best = i;
    return best;
}

void pb_worker_suspect(pb_worker_ref w)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) k->suspect_ms = erl_drv_monotonic_time(ERL_DRV_MSEC);
    erl_drv_mutex_unlock(reg->lock);
}

/*
 * Hand a port's channel (the worker's ends, fds) to a worker with CTL_NEW_PORT. The
 * descriptors stay the caller's to close. 0 and *out filled in, or -1: no worker took it.
 */
int pb_worker_take_port(pb_worker_ref want, uint32_t group, const int *fds, int nfds,
                        pb_attachment *out)
{
    int slot, rc = -1;
    erl_drv_mutex_lock(reg->lock);
    if ((slot = pick(want, group)) >= 0) {
        pb_worker *w = &reg->workers[slot];
        uint32_t serial = ++w->next_serial;
        /* ctl is blocking with a send timeout: a worker that stopped reading fails the open */
        if (send_ctl_fds(w->ctl_fd, CTL_NEW_PORT, serial, fds, nfds)) {
            w->nports++;
            out->worker.slot = slot;
            out->worker.gen = w->gen;
            out->pid = w->pid;
            out->serial = serial;
            out->conf = w->conf;
            rc = 0;
        }
    }
    erl_drv_mutex_unlock(reg->lock);
    return rc;
}

/*
 * Whether w is still the live worker it was: a request waiting on a channel that a
 * forked child holds open learns of the worker's end here. The process itself is asked
 * too (its nanny reaps it at once): the manager port that marks it dead may be queued
 * on the very scheduler this request holds.
 */
int pb_worker_alive(pb_worker_ref w)
{
    pb_worker *k;
    int alive;
    pid_t pid = 0;
    erl_drv_mutex_lock(reg->lock);
    alive = (k = lookup(w)) && k->state == WS_LIVE;
    if (alive) pid = k->pid;
    erl_drv_mutex_unlock(reg->lock);
    return alive && process_alive(pid);
}

/* A blame whose port saw its channel end this long ago was not about a death. */
#define LOST_MS 1000

static int blame_held(const pb_worker *k)
{
    return k->blame_serial &&
           (!k->lost_ms || erl_drv_monotonic_time(ERL_DRV_MSEC) - k->lost_ms <= LOST_MS);
}

/* A port (serial) of class spec waits for the worker: start, control or call. */
void pb_worker_busy(pb_worker_ref w, uint32_t serial, const char *spec)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) {
        k->busy++;
        if (!blame_held(k)) {
            /* the copy only when another port waits: one port's requests in a row are
             * the common case, and this runs for every one */
            if (serial != k->blame_of) {
                strncpy(k->blame, spec, PB_SPEC_MAX - 1);
                k->blame[PB_SPEC_MAX - 1] = 0;
                k->blame_of = serial;
            }
            k->blame_serial = serial;
            k->lost_ms = 0;
        }
    }
    erl_drv_mutex_unlock(reg->lock);
}

/*
 * Its answer came, or it gave up: who waits next is not known, the blame is cleared. lost:
 * it saw the channel end, most likely before the manager port sees the worker's: the
 * blame is kept for LOST_MS.
 */
void pb_worker_idle(pb_worker_ref w, uint32_t serial, int lost)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) {
        if (k->busy > 0) k->busy--;
        if (k->blame_serial == serial) {
            if (lost) k->lost_ms = erl_drv_monotonic_time(ERL_DRV_MSEC);
            else k->blame_serial = 0;
        }
    }
    erl_drv_mutex_unlock(reg->lock);
}

/*
 * At the worker's death: the class that waited longest for it into spec (PB_SPEC_MAX
 * bytes; "" if not known) and how many ports were waiting.
 */
int pb_worker_blame(pb_worker_ref w, char *spec)
{
    pb_worker *k;
    int busy = 0;
    spec[0] = 0;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) {
        busy = k->busy;
        if (blame_held(k)) memcpy(spec, k->blame, PB_SPEC_MAX);
    }
    erl_drv_mutex_unlock(reg->lock);
    return busy;
}

void pb_worker_drop_port(pb_worker_ref w)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w)) && k->nports > 0) k->nports--;
    erl_drv_mutex_unlock(reg->lock);
}

/* One descriptor to a live worker (CTL_SHM). 1 sent, 0 not. */
int pb_worker_send_fd(pb_worker_ref w, int op, uint32_t id, int fd)
{
    pb_worker *k;
    int ok = 0;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w)) && k->state == WS_LIVE) ok = send_ctl_fds(k->ctl_fd, op, id, &fd, 1);
    erl_drv_mutex_unlock(reg->lock);
    return ok;
}

/*
 * A port of this worker, to be announced to its pybridge_manager by the manager port (not
 * by the user port: a traced user port must show only what a C driver's would). The
 * worker says when it has the port (CTL_PORT_OPENED); the manager port takes it then, or
 * at the worker's end.
 */
void pb_worker_opened(pb_worker_ref w, uint32_t serial, ErlDrvTermData port, const char *spec)
{
    pb_worker *k;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) {
        pb_opened *o;
        if (k->nopened == k->copened) {
            k->copened = k->copened ? 2 * k->copened : 8;
            k->opened = driver_realloc(k->opened, k->copened * sizeof(*k->opened));
        }
        o = &k->opened[k->nopened++];
        o->serial = serial;
        o->port = port;
        strncpy(o->spec, spec, PB_SPEC_MAX - 1);
        o->spec[PB_SPEC_MAX - 1] = 0;
    }
    erl_drv_mutex_unlock(reg->lock);
}

/* The port of that serial (0: any) into *out and forgotten: 1, or 0 when there is none. */
int pb_worker_take_opened(pb_worker_ref w, uint32_t serial, pb_opened *out)
{
    pb_worker *k;
    size_t i;
    int found = 0;
    erl_drv_mutex_lock(reg->lock);
    if ((k = lookup(w))) {
        for (i = 0; i < k->nopened && !found; i++) {
            if (serial && k->opened[i].serial != serial) continue;
            *out = k->opened[i];
            k->opened[i] = k->opened[--k->nopened];
            found = 1;
        }
    }
    erl_drv_mutex_unlock(reg->lock);
    return found;
}
