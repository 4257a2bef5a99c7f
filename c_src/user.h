/*
 * user.h - a user port ("pybridge [opts] mod:Class args", or a named driver's "NAME args"):
 * its state, and the functions the files serving it give each other, grouped by file.
 * Each file implements a part of docs/PROTOCOL.md; the file's own comment says which.
 */
#ifndef PB_USER_H
#define PB_USER_H

#include <stdint.h>
#include <sys/uio.h>

#include <erl_driver.h>

#include "workers.h"

#define LAT_BUCKETS 32

enum pb_state {
    S_OPENING,                           /* PY_OPEN sent: open_port waits for its answer */
    S_OPEN,
    S_DEAD,                              /* the worker is gone: Erlang closes the port */
    S_FAILED                             /* failed: ERTS closes the port */
};

/* Why a port ended, as {pybridge, Why} from pybridge:control/call and as the exit reason. */
enum pb_end {
    END_WORKER_DOWN,                     /* its worker died (or failed the port) */
    END_PROTOCOL_ERROR,                  /* the worker sent what the protocol forbids */
    END_HUNG,                            /* port-level locking: a callback passed its limit */
    END_WORKER_HUNG                      /* driver-level: the worker passed it (or froze) */
};

/* A piece of the output queue: a referenced ERTS binary, or (bin NULL) an owned copy. */
typedef struct pb_seg {
    struct pb_seg *next;
    ErlDrvBinary *bin;
    char *ptr;
    size_t len;
} pb_seg;

/* A wrapped request whose answer goes to its caller as a message (request.c). */
typedef struct {
    uint32_t id;
    ErlDrvTermData caller;
    ErlDrvTime start;                    /* us, for the latency buckets and hung workers */
} pb_pending;

typedef struct pb_user {
    pb_common c;                         /* DON'T MOVE: the part every port kind has */
    ErlDrvTermData port_term;
    enum pb_state state;
    int depth;                           /* callbacks of this port running (nested) */
    int zombie;                          /* stop ran inside one of them: free on the way out */
    /* taken from the worker when attached */
    ErlDrvTermData notify;               /* its pybridge_manager process */
    unsigned timeout_ms;
    uint32_t max_frame;                  /* frames over it are errors, not allocations */
    unsigned spin_us;                    /* busy-poll before sleeping on an answer */
    unsigned spin_misses;                /* answers in a row that came after the spin */
    unsigned spin_turn;                  /* requests since the last probe (spin_misses) */
    uint32_t serial;                     /* of the CTL_NEW_PORT that took the channel over */
    char spec[PB_SPEC_MAX];              /* its class, "module:Class" (named: the driver's) */
    int in_python;                       /* a start/control/call counted by pb_worker_busy */
    /* channel.c: the channel to the worker */
    int fd;                              /* read end (from the worker) */
    int wfd;                             /* write end (to the worker); == fd for a socketpair */
    char *ibuf;
    size_t ilen, icap;
    pb_seg *qhead, *qtail;
    size_t qbytes;
    int writing;                         /* ERL_DRV_WRITE selected */
    int transport_busy;                  /* the output queue is over BUSY_HIGH */
    int user_busy;                       /* set_busy_port from Python */
    int busy;                            /* what ERTS was told: user_busy || transport_busy */
    /* shm.c: [0, SHM_HALF) C -> worker, the rest worker -> C */
    char *shm;
    int shm_failed;                      /* could not set it up: everything goes inline */
    uint64_t shm_wpos, shm_wrel;         /* our ring: bytes written, released by the worker */
    ErlDrvBinary *cur_bin;               /* the frame being handled is in it (from the ring) */
    /* request.c: the request in flight (control, call, strict output and timeout) */
    uint32_t next_id;
    uint32_t awaiting;
    int got;
    int got_op;
    int got_fl;
    char *got_body;
    size_t got_len;
    int blocking;                        /* strict mode: output and timeout wait for Python */
    int port_locking;                    /* OPEN_PORT_LOCKING: a callback hangs its port only */
    unsigned limit_ms;                   /* the class's callback_limit (0: none) */
    /* request.c: wrapped requests not answered within the spin, whose callers wait for
     * the answer as a message, their schedulers free */
    pb_pending *pend;
    size_t npend, cpend;
    enum pb_end end;                     /* once S_DEAD or S_FAILED: why */
    /* user_port.c: open in progress */
    uint32_t open_id;
    ErlDrvTermData opener;
    int report_errors;
    ErlDrvUInt64 token;
    /* pids.c: what Python was told last, and every pid value it was ever given */
    ErlDrvTermData last_caller, last_connected;
    ErlDrvTermData *known;
    size_t nknown, cknown;
    /* frames.c: the user's timer: generation Python gave it (0: none); one asked for
     * during open */
    uint32_t timer_gen, pending_gen;
    ErlDrvUInt64 pending_ms;
    int control_flags;
    /* api_calls.c: monitors this port holds (driver_monitor_process) */
    ErlDrvMonitor *mons;
    size_t nmons, cmons;
    /* pybridge:info/1 */
    ErlDrvUInt64 n_output, n_control, n_call, n_timeout, n_late, n_atom_requests;
    ErlDrvUInt64 bytes_to_python, bytes_from_python;
    ErlDrvUInt64 lat[LAT_BUCKETS];       /* control/call latency, log2 buckets of us */
} pb_user;

/* What a frame's handler tells pb_handle_frame. */
enum pb_op_result {
    OP_OK = 0,                           /* go on */
    OP_BAD = -1,                         /* malformed: the port fails with a protocol error */
    OP_DONE = -2                         /* the port takes no more frames (failed already) */
};

/* A frame from the worker, its body checked to be within the frame. */
typedef struct {
    int op, fl;
    uint32_t id;
    char *body;
    size_t len;
} pb_frame;

/* channel.c */
void pb_channel_init(void);
int pb_channel_open(pb_user *u, pb_worker_ref want);
void pb_channel_close(pb_user *u);
int pb_send_iov(pb_user *u, struct iovec *iov, int cnt, ErlDrvBinary **binv);
int pb_send_frame(pb_user *u, int op, int fl, uint32_t id, const char *body, size_t blen);
int pb_send_u64(pb_user *u, int op, uint64_t v);
int pb_flush_queue(pb_user *u);
void pb_clear_queue(pb_user *u);
void pb_update_busy(pb_user *u);
int pb_read_frames(pb_user *u);

/* shm.c */
void pb_shm_setup(pb_user *u);
void pb_shm_free(pb_user *u);
int pb_shm_send(pb_user *u, int op, struct iovec *iov, int cnt, size_t total);
int pb_shm_frame(pb_user *u, pb_frame *f);
int pb_shm_returned(pb_user *u, uint64_t upto);

/* pids.c */
void pb_add_known(pb_user *u, ErlDrvTermData raw);
int pb_is_known(pb_user *u, ErlDrvTermData raw);
void pb_note_caller(pb_user *u);
void pb_send_to(pb_user *u, ErlDrvTermData to, ErlDrvTermData *spec, int n);

/* termprog.c */
int pb_build_spec(pb_user *u, const char *p, size_t n, ErlDrvTermData **out);

/* frames.c */
int pb_handle_frame(pb_user *u, pb_frame *f);

/* api_calls.c: the DRV_* requests that PY_ANSWER (and DRV_DEMONITOR) */
int pb_op_monitor(pb_user *u, pb_frame *f);
int pb_op_demonitor(pb_user *u, pb_frame *f);
int pb_op_system_info(pb_user *u, pb_frame *f);
int pb_op_time(pb_user *u, pb_frame *f);
int pb_op_getenv(pb_user *u, pb_frame *f);
int pb_op_putenv(pb_user *u, pb_frame *f);
int pb_op_busy_msgq_limits(pb_user *u, pb_frame *f);
int pb_op_create_port(pb_user *u, pb_frame *f);
int pb_op_mk_atom(pb_user *u, pb_frame *f);
long pb_find_monitor(pb_user *u, const ErlDrvMonitor *m);
void pb_drop_monitor(pb_user *u, long i);

/* request.c */
uint32_t pb_new_id(pb_user *u);
void pb_strict_request(pb_user *u, int op, struct iovec *iov, int cnt, size_t blen);
ErlDrvSSizeT pb_user_request(pb_user *u, int op, int wrapped, unsigned cmd, char *buf,
                             size_t len, char **rbuf, ErlDrvSizeT rlen);
ErlDrvSSizeT pb_user_forget(pb_user *u, char *buf, size_t len, char **rbuf, ErlDrvSizeT rlen);
int pb_answer_pending(pb_user *u, pb_frame *f);
void pb_fail_pending(pb_user *u, const char *why);

/* user_port.c */
pb_user *pb_user_new(enum pb_state state, unsigned timeout_ms, int blocking);
void pb_user_begin(pb_user *u, int fl, uint32_t id, const char *text, size_t tlen);
void pb_note_busy(pb_user *u);
void pb_note_idle(pb_user *u);
ErlDrvData pb_user_start(ErlDrvPort port, char *cmd);
void pb_user_stop(pb_user *u);
void pb_user_free(pb_user *u);
void pb_user_outputv(pb_user *u, ErlIOVec *ev);
void pb_user_timeout(pb_user *u);
void pb_user_flush(pb_user *u);
void pb_user_process_exit(pb_user *u, ErlDrvMonitor *m);
void pb_fail_open(pb_user *u, const char *etf, size_t len, const char *tag);
void pb_protocol_error(pb_user *u);
void pb_worker_down(pb_user *u);
void pb_port_hung(pb_user *u);
void pb_worker_hung(pb_user *u);
const char *pb_end_name(enum pb_end e);


#endif
