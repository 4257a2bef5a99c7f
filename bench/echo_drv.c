/*
 * The ceiling baseline of `make bench`: a plain C linked-in echo driver.
 * port_control echoes its data; port_command (outputv) comes back with driver_outputv;
 * port_call answers the term it was given.
 */
#include <string.h>
#include <erl_driver.h>

static ErlDrvData echo_start(ErlDrvPort port, char *cmd)
{
    (void)cmd;
    set_port_control_flags(port, PORT_CONTROL_FLAG_BINARY);
    return (ErlDrvData)port;
}

static void echo_outputv(ErlDrvData d, ErlIOVec *ev)
{
    driver_outputv((ErlDrvPort)d, NULL, 0, ev, 0);
}

static ErlDrvSSizeT echo_control(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                                 char **rbuf, ErlDrvSizeT rlen)
{
    ErlDrvBinary *b = driver_alloc_binary(len);
    (void)d; (void)cmd; (void)rlen;
    memcpy(b->orig_bytes, buf, len);
    *rbuf = (char *)b;
    return (ErlDrvSSizeT)len;
}

static ErlDrvSSizeT echo_call(ErlDrvData d, unsigned int cmd, char *buf, ErlDrvSizeT len,
                              char **rbuf, ErlDrvSizeT rlen, unsigned int *flags)
{
    (void)d; (void)cmd; (void)flags;
    if (len > rlen) *rbuf = driver_alloc(len);
    memcpy(*rbuf, buf, len);
    return (ErlDrvSSizeT)len;
}

static ErlDrvEntry echo_entry = {
    NULL, echo_start, NULL, NULL, NULL, NULL, "pb_bench_echo", NULL, NULL,
    echo_control, NULL, echo_outputv, NULL, NULL, echo_call, NULL,
    ERL_DRV_EXTENDED_MARKER, ERL_DRV_EXTENDED_MAJOR_VERSION, ERL_DRV_EXTENDED_MINOR_VERSION,
    ERL_DRV_FLAG_USE_PORT_LOCKING, NULL, NULL, NULL, NULL
};

DRIVER_INIT(pb_bench_echo)
{
    return &echo_entry;
}
