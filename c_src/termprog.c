/*
 * termprog.c - term programs (docs/PROTOCOL.md, "Term programs") into the driver term
 * format of erl_drv_output_term / erl_drv_send_term. Every count is checked against the
 * terms built so far, so a bad program is refused, never a bad term.
 */
#include "pybridge_protocol.h"
#include "etf.h"
#include "user.h"

/* The spec points into p, which must outlive its use. Returns the spec length or -1. */
int pb_build_spec(pb_user *u, const char *p, size_t n, ErlDrvTermData **out)
{
    size_t i = 0, k = 0, cap = 32;
    long depth = 0;                      /* terms built and not yet combined */
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
            if (n - i < m || m < 2 || (unsigned char)p[i] != ETF_VERSION) goto bad;
            t[k++] = ERL_DRV_EXT2TERM; t[k++] = (ErlDrvTermData)(p + i); t[k++] = m;
            i += m;
            depth++;
            break;
        case T_PID: {
            ErlDrvTermData raw;
            if (n - i < 8) goto bad;
            raw = (ErlDrvTermData)get64(p + i);
            i += 8;
            if (!pb_is_known(u, raw)) goto bad;
            t[k++] = ERL_DRV_PID; t[k++] = raw;
            depth++;
            break;
        }
        case T_PORT:
            t[k++] = ERL_DRV_PORT; t[k++] = u->port_term;
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
