/*
 * named.h - which driver a pybridge .so is (named.c): pybridge itself, a named driver
 * serving one class, and where to find the pybridge.so that owns the workers
 * (docs/PROTOCOL.md, "Named drivers").
 */
#ifndef PB_NAMED_H
#define PB_NAMED_H

#include <erl_driver.h>
#include <stdint.h>

extern char pb_driver_name[];            /* "pybridge", or a named driver's NAME */
extern char pb_driver_spec[];            /* a named driver's "module:Class", else "" */
extern char pb_owner_path[];             /* a named driver's pybridge.so */
extern uint32_t pb_driver_group;         /* a named driver's worker group (0: default) */

int pb_configure(ErlDrvEntry *entry, unsigned long *callbacks);

#endif
