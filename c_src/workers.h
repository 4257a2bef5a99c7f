/*
 * workers.h - the registry of Python workers: which exist, how to reach each one's ctl
 * socket (docs/PROTOCOL.md, "ctl channel opcodes"), and which ports each serves.
 *
 * pybridge.so owns the registry; pybridge_manager.so (which adds and removes workers) and
 * the named drivers copied from pybridge.so (which give them ports) find it in the loaded
 * pybridge.so with dlsym. Each .so holds its own pointer to it (pb_workers_create or
 * pb_workers_attach, from its driver init).
 */
#ifndef PB_WORKERS_H
#define PB_WORKERS_H

#include <stdint.h>
#include <sys/types.h>

#include <erl_driver.h>

#include "pybridge_protocol.h"

#define PB_SPEC_MAX 256                  /* a class spec kept for blame; longer is cut */

/* A worker: its slot, and the generation of the slot's occupant, so that a port's
 * reference stops matching once the slot holds a new worker. */
typedef struct {
    int slot;                            /* -1: none */
    unsigned gen;
} pb_worker_ref;

/* What MGR_SPAWN configured and a worker's ports take over when attached. */
typedef struct {
    unsigned timeout_ms;
    uint32_t max_frame;
    unsigned spin_us;
    uint32_t group;                      /* its worker group: only that group's ports */
    ErlDrvTermData notify;               /* the pybridge_manager process */
} pb_worker_conf;

enum pb_worker_state { WS_FREE, WS_HANDSHAKE, WS_LIVE, WS_DEAD };

/* A port given to a worker, until its manager port tells pybridge_manager of it. */
typedef struct {
    uint32_t serial;                     /* of its CTL_NEW_PORT */
    ErlDrvTermData port;                 /* driver_mk_port of the user port */
    char spec[PB_SPEC_MAX];              /* its class */
} pb_opened;

typedef struct {
    enum pb_worker_state state;
    int ctl_fd;                          /* the manager port's; kept to pass descriptors */
    pid_t pid;
    unsigned gen;
    int nports;
    uint32_t next_serial;                /* of CTL_NEW_PORT */
    pb_worker_conf conf;
    /* what the worker is doing, to blame a class for its death: how many ports wait for
     * a start/control/call, and the class of the one that has waited longest (when it is
     * still waiting: blame_serial != 0) */
    int busy;
    uint32_t blame_serial;
    char blame[PB_SPEC_MAX];
    uint32_t blame_of;                   /* the port whose spec is in blame */
    ErlDrvTime lost_ms;                  /* that port saw the worker's end first: when */
    ErlDrvTime suspect_ms;               /* when a port of it last saw its channel end */
    pb_opened *opened;                   /* ports not announced yet (pb_worker_opened) */
    size_t nopened, copened;
} pb_worker;

typedef struct {
    ErlDrvMutex *lock;
    pb_worker workers[MAX_WORKERS];
} pb_registry;

/* The part every port kind has, first in each kind's struct: its port and its worker. */
typedef struct {
    ErlDrvPort port;
    pb_worker_ref worker;
    pid_t os_pid;                        /* the worker's */
    uint32_t group;                      /* the worker group (-g), 0: the default group */
} pb_common;

/* A port's hand-over to a worker (pb_worker_take_port). */
typedef struct {
    pb_worker_ref worker;
    pid_t pid;
    uint32_t serial;                     /* of the CTL_NEW_PORT that carried the channel */
    pb_worker_conf conf;
} pb_attachment;

extern const pb_worker_ref PB_NO_WORKER;

/* Driver init and finish: pybridge.so owns r; the others attach to pybridge.so's. */
int pb_workers_create(pb_registry *r);
void pb_workers_destroy(void);
int pb_workers_attach(const char *pybridge_so);
int pb_workers_attach_beside(const void *self);
void pb_workers_detach(void);

/* The manager port's side: a spawned worker, its handshake, its end. */
int pb_worker_add(pid_t pid, int ctl_fd, const pb_worker_conf *conf, pb_worker_ref *out);
void pb_worker_live(pb_worker_ref w);
void pb_worker_dying(pb_worker_ref w);
void pb_worker_remove(pb_worker_ref w);

/* A user port's side. want: that live worker, or PB_NO_WORKER for the live worker of the
 * group with fewest ports. */
int pb_worker_take_port(pb_worker_ref want, uint32_t group, const int *fds, int nfds,
                        pb_attachment *out);
int pb_worker_alive(pb_worker_ref w);
void pb_worker_busy(pb_worker_ref w, uint32_t serial, const char *spec);
void pb_worker_idle(pb_worker_ref w, uint32_t serial, int lost);
void pb_worker_suspect(pb_worker_ref w);
int pb_worker_blame(pb_worker_ref w, char *spec);
void pb_worker_drop_port(pb_worker_ref w);
void pb_worker_opened(pb_worker_ref w, uint32_t serial, ErlDrvTermData port, const char *spec);
int pb_worker_take_opened(pb_worker_ref w, uint32_t serial, pb_opened *out);
int pb_worker_send_fd(pb_worker_ref w, int op, uint32_t id, int fd);

#endif
