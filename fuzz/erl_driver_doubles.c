/*
 * erl_driver_doubles.c - stand-ins for the erl_driver API that the fuzzed units of the
 * driver call (see fuzz_frames.c). Every stand-in that consumes data reads all of it;
 * term specs are checked as the emulator would; driver_select with ERL_DRV_USE off
 * closes the descriptor, as stop_select would.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <erl_driver.h>

static volatile unsigned sink;

/* Reads every byte, so ASan sees any pointer or length the driver gets wrong. */
static void touch(const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t i;
    for (i = 0; i < n; i++) sink += c[i];
}

/* ---- memory ---- */
void *driver_alloc(ErlDrvSizeT n) { return malloc(n ? n : 1); }
void *driver_realloc(void *p, ErlDrvSizeT n) { return realloc(p, n ? n : 1); }
void driver_free(void *p) { free(p); }
/* the reference count lives just before the binary (ERTS keeps it private) */
ErlDrvBinary *driver_alloc_binary(ErlDrvSizeT n)
{
    long *rc = malloc(sizeof(long) + sizeof(ErlDrvBinary) + n);
    ErlDrvBinary *b = (ErlDrvBinary *)(rc + 1);
    *rc = 1;
    b->orig_size = (ErlDrvSInt)n;
    return b;
}
void driver_free_binary(ErlDrvBinary *b) { long *rc = (long *)b - 1; if (--*rc == 0) free(rc); }
ErlDrvSInt driver_binary_inc_refc(ErlDrvBinary *b) { return ++*((long *)b - 1); }

/* ---- output: read everything ---- */
int driver_output(ErlDrvPort p, char *b, ErlDrvSizeT n) { (void)p; touch(b, n); return 0; }
int driver_output2(ErlDrvPort p, char *h, ErlDrvSizeT hn, char *b, ErlDrvSizeT n)
{ (void)p; touch(h, hn); touch(b, n); return 0; }
int driver_output_binary(ErlDrvPort p, char *h, ErlDrvSizeT hn, ErlDrvBinary *b, ErlDrvSizeT off, ErlDrvSizeT n)
{ (void)p; touch(h, hn); touch(b->orig_bytes + off, n); return 0; }
int driver_outputv(ErlDrvPort p, char *h, ErlDrvSizeT hn, ErlIOVec *ev, ErlDrvSizeT skip)
{
    int i;
    (void)p; (void)skip;
    touch(h, hn);
    for (i = 0; i < ev->vsize; i++) touch(ev->iov[i].iov_base, ev->iov[i].iov_len);
    return 0;
}

/* Checks a spec as the emulator would and reads what it points to. */
static int check_spec(ErlDrvTermData *t, int n)
{
    int i = 0;
    long depth = 0;
    while (i < n) {
        switch (t[i]) {
        case ERL_DRV_EXT2TERM: touch((void *)t[i + 1], t[i + 2]); depth++; i += 3; break;
        case ERL_DRV_PID: case ERL_DRV_PORT: case ERL_DRV_ATOM: depth++; i += 2; break;
        case ERL_DRV_NIL: depth++; i += 1; break;
        case ERL_DRV_UINT64: touch((void *)t[i + 1], 8); depth++; i += 2; break;
        case ERL_DRV_TUPLE: if ((long)t[i + 1] > depth) abort(); depth -= (long)t[i + 1] - 1; i += 2; break;
        case ERL_DRV_LIST: if (t[i + 1] < 1 || (long)t[i + 1] > depth) abort(); depth -= (long)t[i + 1] - 1; i += 2; break;
        case ERL_DRV_MAP: if (2 * (long)t[i + 1] > depth) abort(); depth -= 2 * (long)t[i + 1] - 1; i += 2; break;
        default: abort();
        }
    }
    if (depth != 1) abort();
    return 1;
}
int erl_drv_output_term(ErlDrvTermData port, ErlDrvTermData *t, int n) { (void)port; return check_spec(t, n); }
int erl_drv_send_term(ErlDrvTermData port, ErlDrvTermData to, ErlDrvTermData *t, int n)
{ (void)port; (void)to; return check_spec(t, n); }

/* ---- the rest of the API the driver calls ---- */
int driver_failure(ErlDrvPort p, int e) { (void)p; (void)e; return 0; }
int driver_failure_atom(ErlDrvPort p, char *a) { (void)p; touch(a, strlen(a)); return 0; }
int driver_failure_posix(ErlDrvPort p, int e) { (void)p; (void)e; return 0; }
int driver_failure_eof(ErlDrvPort p) { (void)p; return 0; }
int driver_select(ErlDrvPort p, ErlDrvEvent e, int mode, int on)
{ (void)p; if (!on && (mode & ERL_DRV_USE)) close((int)(long)e); return 0; }
void set_busy_port(ErlDrvPort p, int on) { (void)p; (void)on; }
void set_port_control_flags(ErlDrvPort p, int f) { (void)p; (void)f; }
int driver_set_timer(ErlDrvPort p, unsigned long t) { (void)p; (void)t; return 0; }
int driver_cancel_timer(ErlDrvPort p) { (void)p; return 0; }
static ErlDrvSizeT qsize;
int driver_enq(ErlDrvPort p, char *b, ErlDrvSizeT n) { (void)p; touch(b, n); qsize += n; return 0; }
int driver_pushq(ErlDrvPort p, char *b, ErlDrvSizeT n) { (void)p; touch(b, n); qsize += n; return 0; }
ErlDrvSizeT driver_deq(ErlDrvPort p, ErlDrvSizeT n) { (void)p; if (n > qsize) abort(); qsize -= n; return qsize; }
ErlDrvSizeT driver_sizeq(ErlDrvPort p) { (void)p; return qsize; }
int driver_monitor_process(ErlDrvPort p, ErlDrvTermData pid, ErlDrvMonitor *m)
{ (void)p; memset(m, 0, sizeof(*m)); memcpy(m, &pid, sizeof(pid)); return 0; }
int driver_demonitor_process(ErlDrvPort p, const ErlDrvMonitor *m) { (void)p; touch(m, sizeof(*m)); return 0; }
int driver_compare_monitors(const ErlDrvMonitor *a, const ErlDrvMonitor *b) { return memcmp(a, b, sizeof(*a)); }
ErlDrvTermData driver_caller(ErlDrvPort p) { (void)p; return 0x1233; }
ErlDrvTermData driver_connected(ErlDrvPort p) { (void)p; return 0x4563; }
ErlDrvTermData driver_mk_atom(char *a) { touch(a, strlen(a)); return 0x7b; }
ErlDrvTermData driver_mk_port(ErlDrvPort p) { (void)p; return 0x8f; }
void erl_drv_init_ack(ErlDrvPort p, ErlDrvData r) { (void)p; (void)r; }
void erl_drv_set_os_pid(ErlDrvPort p, ErlDrvSInt pid) { (void)p; (void)pid; }
ErlDrvTime erl_drv_monotonic_time(ErlDrvTimeUnit u) { (void)u; return 1; }
ErlDrvTime erl_drv_time_offset(ErlDrvTimeUnit u) { (void)u; return 0; }
int erl_drv_getenv(const char *k, char *v, size_t *n) { touch(k, strlen(k)); (void)v; (void)n; return -1; }
int erl_drv_putenv(const char *k, char *v) { touch(k, strlen(k)); touch(v, strlen(v)); return 0; }
void erl_drv_busy_msgq_limits(ErlDrvPort p, ErlDrvSizeT *lo, ErlDrvSizeT *hi) { (void)p; (void)lo; (void)hi; }
void driver_system_info(ErlDrvSysInfo *si, size_t n)
{ (void)n; memset(si, 0, sizeof(*si)); si->erts_version = "13"; si->otp_release = "25"; }
ErlDrvPort driver_create_port(ErlDrvPort p, ErlDrvTermData o, char *name, ErlDrvData d)
{ (void)o; (void)name; (void)d; return p; }
ErlDrvSizeT driver_vec_to_buf(ErlIOVec *ev, char *buf, ErlDrvSizeT n) { (void)ev; (void)buf; return n; }
ErlDrvMutex *erl_drv_mutex_create(char *name) { (void)name; return (ErlDrvMutex *)malloc(1); }
void erl_drv_mutex_destroy(ErlDrvMutex *m) { free(m); }
void erl_drv_mutex_lock(ErlDrvMutex *m) { (void)m; }
void erl_drv_mutex_unlock(ErlDrvMutex *m) { (void)m; }
