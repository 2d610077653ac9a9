/*
 * model_path.c - what a model argument (`mlxr run NAME`, `-m NAME`) names: a file or directory
 * when one exists at that path, else an installed model NAME[:TAG] in the registry the daemon
 * uses (server/registry.h), as `ollama run NAME` does. A path wins over a name, so a local file
 * called like a model is never shadowed. The registry is only opened when its catalog exists,
 * so a mistyped path does not create a home directory.
 */
#include "cli.h"

#include "server/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *cli_model_path(const char *arg, const char *home) {
    struct stat sb;
    if (!arg) arg = cli_default_model();
    if (stat(arg, &sb) == 0) {
        char *p = strdup(arg);
        if (!p) cli_error("out of memory");
        return p;
    }
    char name[104], tag[64], db[4096];
    if (mlxr_registry_parse_name(arg, name, tag, NULL) != MLXR_OK) {
        cli_error("cannot load model '%s': no such file, and not a model name", arg);
        return NULL;
    }
    if (!home) home = mlxr_registry_default_home();
    snprintf(db, sizeof db, "%s/catalog.db", home ? home : "");
    if (!home || stat(db, &sb) != 0) {
        cli_error("cannot load model '%s': no such file, and no registry at %s (mlxr import/pull "
                  "install models)",
                  arg, home ? home : "$MLXR_HOME");
        return NULL;
    }
    mlxr_registry *r = NULL;
    mlxr_model_entry e;
    mlxr_err err = {0};
    char *path = NULL;
    if (mlxr_registry_open(home, &r, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        return NULL;
    }
    mlxr_status st = mlxr_registry_find(r, arg, &e, &err);
    if (st == MLXR_ERR_NOT_FOUND) {
        cli_error("cannot load model '%s': no such file, and no model %s:%s in %s (see mlxr list)",
                  arg, name, tag, home);
    } else if (st != MLXR_OK) {
        cli_error("%s", err.msg);
    } else {
        if (!(path = strdup(e.path))) cli_error("out of memory");
        mlxr_registry_touch(r, arg);
        mlxr_model_entry_clear(&e);
    }
    mlxr_registry_close(r);
    return path;
}
