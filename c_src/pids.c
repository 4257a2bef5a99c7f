/*
 * pids.c - the pids a user port names to Python by their raw driver term value
 * (docs/PROTOCOL.md, "Pids"): which values it handed out, telling Python when the caller
 * or the connected process changed (PY_CALLER, PY_CONNECTED), and asking the port's
 * pybridge_manager for a pid's external form ({pybridge_resolve, Raw, Pid}).
 */
#include "pybridge_protocol.h"
#include "user.h"

/*
 * Only values handed to Python may come back as ERL_DRV_PID: a forged value must never
 * become a term. Distinct callers of one port are few; a linear scan from the newest is
 * enough.
 */
void pb_add_known(pb_user *u, ErlDrvTermData raw)
{
    if (pb_is_known(u, raw)) return;
    if (u->nknown == u->cknown) {
        u->cknown = u->cknown ? 2 * u->cknown : 8;
        u->known = driver_realloc(u->known, u->cknown * sizeof(*u->known));
    }
    u->known[u->nknown++] = raw;
}

int pb_is_known(pb_user *u, ErlDrvTermData raw)
{
    size_t i;
    for (i = u->nknown; i > 0; i--)
        if (u->known[i - 1] == raw) return 1;
    return 0;
}

void pb_send_to(pb_user *u, ErlDrvTermData to, ErlDrvTermData *spec, int n)
{
    if (to) erl_drv_send_term(u->port_term, to, spec, n);
}

/* Ask the port's pybridge_manager for the external form of a pid (CTL_PID_INFO). */
void pb_request_pid_info(pb_user *u, ErlDrvTermData raw)
{
    ErlDrvUInt64 r64 = raw;
    ErlDrvTermData t[8] = { ERL_DRV_ATOM, driver_mk_atom("pybridge_resolve"),
                            ERL_DRV_UINT64, (ErlDrvTermData)&r64,
                            ERL_DRV_PID, raw, ERL_DRV_TUPLE, 3 };
    pb_send_to(u, u->notify, t, 8);
}

/*
 * Tell Python who calls and who is connected when that changed. The external form is
 * requested now, before control/call may block this scheduler, so that Python rarely
 * has to wait for it.
 */
void pb_note_caller(pb_user *u)
{
    ErlDrvTermData c = driver_caller(u->c.port), k = driver_connected(u->c.port);
    if (k != u->last_connected) {
        u->last_connected = k;
        pb_add_known(u, k);
        pb_send_u64(u, PY_CONNECTED, k);
        pb_request_pid_info(u, k);
    }
    if (c != u->last_caller) {
        u->last_caller = c;
        pb_add_known(u, c);
        pb_send_u64(u, PY_CALLER, c);
        if (c != k) pb_request_pid_info(u, c);
    }
}
