/*
 * pids.c - the pids a user port names to Python by their raw driver term value
 * (docs/PROTOCOL.md, "Pids"): which values it handed out, and telling Python when the
 * caller or the connected process changed (PY_CALLER, PY_CONNECTED). Python makes a pid's
 * external form from the raw value itself: no message, no wait.
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

/* Tell Python who calls and who is connected when that changed. */
void pb_note_caller(pb_user *u)
{
    ErlDrvTermData c = driver_caller(u->c.port), k = driver_connected(u->c.port);
    if (k != u->last_connected) {
        u->last_connected = k;
        pb_add_known(u, k);
        pb_send_u64(u, PY_CONNECTED, k);
    }
    if (c != u->last_caller) {
        u->last_caller = c;
        pb_add_known(u, c);
        pb_send_u64(u, PY_CALLER, c);
    }
}
