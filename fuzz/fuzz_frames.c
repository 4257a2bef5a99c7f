/*
 * libFuzzer harness for the driver's frame reading and dispatch (c_src/channel.c,
 * frames.c, api_calls.c, shm.c) and its term programs (termprog.c): `make fuzz`, and a
 * short run in `make test-fuzz`. docs/PROTOCOL.md says what a valid frame is.
 *
 * It links those units (and the ones they call) against the stand-ins for the erl_driver
 * API in erl_driver_doubles.c: this harness looks for memory errors in the C parser,
 * while behaviour is tested against the real emulator elsewhere.
 *
 * Input: byte 0 picks the port state (open or opening), the rest arrives on the port's
 * channel as if the worker had written it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../c_src/pybridge_protocol.h"
#include "../c_src/user.h"

static pb_registry registry;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    int sv[2];
    pb_user *u;
    char drain[65536];
    if (!ready) {
        pb_channel_init();
        pb_workers_create(&registry);
        ready = 1;
    }
    if (size < 1 || size > 60000) return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) return 0;
    if (write(sv[1], data + 1, size - 1) != (ssize_t)(size - 1)) abort();
    u = pb_user_new(data[0] & 1 ? S_OPENING : S_OPEN, 10, 0);
    u->open_id = 1;
    u->fd = sv[0];
    u->wfd = dup(sv[0]);                 /* the driver's answers, drained below */
    u->max_frame = DEFAULT_MAX_FRAME;
    u->opener = u->last_caller = 0x1233;
    u->last_connected = 0x4563;
    pb_add_known(u, 0x1233);
    pb_add_known(u, 0x4563);
    driver_deq(u->c.port, driver_sizeq(u->c.port));     /* the ERTS queue starts empty */
    pb_read_frames(u);
    while (read(sv[1], drain, sizeof(drain)) > 0)       /* what the driver answered */
        ;
    pb_user_free(u);                     /* the stand-ins close the fds and free */
    close(sv[1]);
    return 0;
}
