/*
 * named.c - named drivers (docs/PROTOCOL.md, "Named drivers"): loaded as NAME.so, a copy
 * of pybridge.so made by pybridge:load_driver, the driver reads NAME.conf beside it: the
 * name, the "module:Class" it serves, the class's driver flags, the path of the original
 * pybridge.so, whose workers it uses, the callbacks the class defines, and the worker group
 * its ports go to (the class's worker_group attribute; 0 is the default group).
 */
#define _GNU_SOURCE                      /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "named.h"

char pb_driver_name[256] = "pybridge";
char pb_driver_spec[512];
char pb_owner_path[4096];
uint32_t pb_driver_group;

static int read_line(FILE *f, char *buf, size_t n)
{
    size_t l;
    if (!fgets(buf, (int)n, f)) return -1;
    l = strlen(buf);
    if (l == 0 || buf[l - 1] != '\n') return -1;
    buf[l - 1] = 0;
    return l > 1 ? 0 : -1;
}

/*
 * Without a valid .conf the entry keeps the name "pybridge", which makes erl_ddll refuse
 * to load the file under any other name. 1 and *callbacks (the class's CB_* bits) for a
 * named driver, 0 for pybridge itself.
 */
int pb_configure(ErlDrvEntry *entry, unsigned long *callbacks)
{
    Dl_info info;
    char conf[4096], name[256], spec[512], flags[32], owner[4096], cb[32], group[32];
    int named = 0;
    const char *base;
    size_t l;
    FILE *f;
    unsigned long fl;
    if (!dladdr((void *)entry, &info) || !info.dli_fname) return 0;
    base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    l = strlen(info.dli_fname);
    if (!strcmp(base, "pybridge.so") || l < 4 || l + 3 > sizeof(conf)) return 0;
    memcpy(conf, info.dli_fname, l - 3);
    memcpy(conf + l - 3, ".conf", 6);
    if (!(f = fopen(conf, "re"))) return 0;
    if (read_line(f, name, sizeof(name)) == 0 && read_line(f, spec, sizeof(spec)) == 0 &&
        read_line(f, flags, sizeof(flags)) == 0 && read_line(f, owner, sizeof(owner)) == 0 &&
        read_line(f, cb, sizeof(cb)) == 0) {
        fl = strtoul(flags, NULL, 10);
        memcpy(pb_driver_name, name, sizeof(pb_driver_name));
        memcpy(pb_driver_spec, spec, sizeof(pb_driver_spec));
        memcpy(pb_owner_path, owner, sizeof(pb_owner_path));
        entry->driver_name = pb_driver_name;
        entry->driver_flags |= (int)(fl & (ERL_DRV_FLAG_SOFT_BUSY | ERL_DRV_FLAG_NO_BUSY_MSGQ));
        *callbacks = strtoul(cb, NULL, 10);
        pb_driver_group = read_line(f, group, sizeof(group)) == 0
                              ? (uint32_t)strtoul(group, NULL, 10) : 0;
        named = 1;
    }
    fclose(f);
    return named;
}
