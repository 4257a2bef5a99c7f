/*
 * driver.c - the erl_drv_entry of pybridge.so, the user ports' driver (and, loaded as a
 * named driver's NAME.so, that driver: named.c). docs/PROTOCOL.md describes what its
 * ports say to their workers; user_port.c and request.c do the work of each callback.
 *
 * pybridge.so also owns the registry of workers (workers.h), which pybridge_manager.so
 * and the named drivers find here by name.
 */
#include <string.h>
#include <unistd.h>

#include "etf.h"
#include "named.h"
#include "pybridge_protocol.h"
#include "user.h"

__attribute__((visibility("default"))) pb_registry pybridge_registry;

/*
 * driver_failure*, erl_drv_init_ack(error) and friends run stop at once, from inside the
 * callback that called them. So every callback counts itself in, and a stop that comes
 * while one runs releases the channel and the worker but leaves the memory to the
 * outermost callback, which frees it on its way out.
 */
#define ENTER(u) ((u)->depth++)
#define LEAVE(u) do { if (--(u)->depth == 0 && (u)->zombie) pb_user_free(u); } while (0)

static int drv_init(void)
{
    pb_channel_init();
    /* a named driver: the original (loaded by pybridge_sup) keeps the workers */
    return pb_driver_spec[0] ? pb_workers_attach(pb_owner_path)
                             : pb_workers_create(&pybridge_registry);
}

static void drv_finish(void)
{
    if (pb_driver_spec[0]) pb_workers_detach();
    else pb_workers_destroy();
}

static ErlDrvData drv_start(ErlDrvPort port, char *cmd)
{
    return pb_user_start(port, cmd);
}

static void drv_stop(ErlDrvData d)
{
    pb_user *u = (pb_user *)d;
    pb_user_stop(u);
    if (u->depth) u->zombie = 1; else pb_user_free(u);
}

static void drv_outputv(ErlDrvData d, ErlIOVec *ev)
{
    pb_user *u = (pb_user *)d;
    ENTER(u);
    pb_user_outputv(u, ev);
    LEAVE(u);
}

/* A named driver whose class has output but no outputv: ERTS hands over one buffer. */
static void drv_output(ErlDrvData d, char *buf, ErlDrvSizeT len)
{
    SysIOVec v;
    ErlIOVec ev;
    memset(&ev, 0, sizeof(ev));
    v.iov_base = buf;
    v.iov_len = len;
    ev.vsize = 1;
    ev.size = len;
    ev.iov = &v;
    drv_outputv(d, &ev);
}

static ErlDrvSSizeT drv_control(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                                char **rbuf, ErlDrvSizeT rlen)
{
    pb_user *u = (pb_user *)d;
    ErlDrvSSizeT r;
    ENTER(u);
    r = pb_user_request(u, PY_CONTROL, 0, cmd, buf, len, rbuf, rlen);
    LEAVE(u);
    return r;
}

/* port_call: the user's commands, and below them the reserved ones (PB_CALL_*) */
static ErlDrvSSizeT drv_call(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                             char **rbuf, ErlDrvSizeT rlen, unsigned int *flags)
{
    pb_user *u = (pb_user *)d;
    ErlDrvSSizeT r;
    (void)flags;
    ENTER(u);
    if (cmd == PB_CALL_CONTROL)
        r = pb_user_request(u, PY_CONTROL, 1, 0, buf, len, rbuf, rlen);
    else if (cmd == PB_CALL_CALL)
        r = pb_user_request(u, PY_CALL, 1, 0, buf, len, rbuf, rlen);
    else if (cmd == PB_CALL_INFO)
        r = pb_etf_info(u, rbuf, rlen);
    else if (cmd == PB_CALL_FORGET)
        r = pb_user_forget(u, buf, len, rbuf, rlen);
    else if (cmd >= PB_CALL_RESERVED)
        r = -1;
    else
        r = pb_user_request(u, PY_CALL, 0, cmd, buf, len, rbuf, rlen);
    LEAVE(u);
    return r;
}

static void drv_ready_input(ErlDrvData d, ErlDrvEvent e)
{
    pb_user *u = (pb_user *)d;
    (void)e;
    ENTER(u);
    if (u->fd >= 0 && pb_read_frames(u) > 0) pb_worker_down(u);
    LEAVE(u);
}

static void drv_ready_output(ErlDrvData d, ErlDrvEvent e)
{
    pb_user *u = (pb_user *)d;
    (void)e;
    ENTER(u);
    if (u->wfd >= 0 && pb_flush_queue(u) < 0) pb_worker_down(u);
    LEAVE(u);
}

static void drv_timeout(ErlDrvData d)
{
    pb_user *u = (pb_user *)d;
    ENTER(u);
    pb_user_timeout(u);
    LEAVE(u);
}

static void drv_flush(ErlDrvData d)
{
    pb_user *u = (pb_user *)d;
    ENTER(u);
    pb_user_flush(u);
    LEAVE(u);
}

static void drv_process_exit(ErlDrvData d, ErlDrvMonitor *m)
{
    pb_user *u = (pb_user *)d;
    ENTER(u);
    pb_user_process_exit(u, m);
    LEAVE(u);
}

static void drv_stop_select(ErlDrvEvent e, void *reserved)
{
    (void)reserved;
    close((int)(long)e);
}

static ErlDrvEntry user_entry = {
    drv_init,
    drv_start,
    drv_stop,
    NULL,                                /* output: outputv is always used */
    drv_ready_input,
    drv_ready_output,
    "pybridge",
    drv_finish,
    NULL,                                /* handle */
    drv_control,
    drv_timeout,
    drv_outputv,
    NULL,                                /* ready_async */
    drv_flush,
    drv_call,
    NULL,                                /* event */
    ERL_DRV_EXTENDED_MARKER,
    ERL_DRV_EXTENDED_MAJOR_VERSION,
    ERL_DRV_EXTENDED_MINOR_VERSION,
    ERL_DRV_FLAG_USE_PORT_LOCKING | ERL_DRV_FLAG_USE_INIT_ACK,
    NULL,                                /* handle2 */
    drv_process_exit,
    drv_stop_select,
    NULL                                 /* emergency_close */
};

/*
 * A named driver's entry has exactly the callbacks its class defines (the .conf's CB_*
 * bits), NULL for the others, so that ERTS treats its ports as the same C driver's: a
 * command to a class without outputv arrives as one binary, in traces too. The bridge's
 * own callbacks (start, stop, ready_*, timeout, stop_select) stay.
 */
static void keep_callbacks(unsigned long cb)
{
    user_entry.output = (cb & CB_OUTPUT) && !(cb & CB_OUTPUTV) ? drv_output : NULL;
    user_entry.outputv = cb & CB_OUTPUTV ? drv_outputv : NULL;
    if (!(cb & CB_CONTROL)) user_entry.control = NULL;
    if (!(cb & CB_CALL)) user_entry.call = NULL;
    if (!(cb & CB_FLUSH)) user_entry.flush = NULL;
    if (!(cb & CB_PROCESS_EXIT)) user_entry.process_exit = NULL;
}

DRIVER_INIT(pybridge)
{
    unsigned long cb;
    if (pb_configure(&user_entry, &cb)) keep_callbacks(cb);
    return &user_entry;
}
