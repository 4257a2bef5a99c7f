/*
 * etf.h - the external term format tags the driver writes and checks by hand
 * (erts/emulator/beam/external.h names them the same), and the replies written in it
 * (docs/PROTOCOL.md, "Reserved port_call commands").
 */
#ifndef PB_ETF_H
#define PB_ETF_H

#include <erl_driver.h>

#include "user.h"

#define ETF_VERSION 131
#define SMALL_INTEGER_EXT 97             /* u8 */
#define INTEGER_EXT 98                   /* i32 */
#define ATOM_EXT 100                     /* len:u16, Latin-1 name */
#define SMALL_TUPLE_EXT 104              /* arity:u8, elements */
#define BINARY_EXT 109                   /* len:u32, bytes */
#define SMALL_BIG_EXT 110                /* n:u8, sign:u8, n little-endian digits */
#define MAP_EXT 116                      /* arity:u32, key, value, ... */
#define SMALL_ATOM_UTF8_EXT 119          /* len:u8, name */

char *pb_reply_buf(char **rbuf, ErlDrvSizeT rlen, size_t need);
ErlDrvSSizeT pb_etf_pb_error(const char *what, char **rbuf, ErlDrvSizeT rlen);
ErlDrvSSizeT pb_etf_wrap(int ok, const char *etf, size_t len, char **rbuf, ErlDrvSizeT rlen);
ErlDrvSSizeT pb_etf_info(pb_user *u, char **rbuf, ErlDrvSizeT rlen);
ErlDrvSSizeT pb_etf_pending(uint32_t id, unsigned ms, char **rbuf, ErlDrvSizeT rlen);
ErlDrvSSizeT pb_etf_ok(char **rbuf, ErlDrvSizeT rlen);

#endif
