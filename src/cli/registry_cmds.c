/*
 * registry_cmds.c - the model registry from the command line: `mlxr list`, `show NAME`,
 * `rm NAME`, `import PATH --name NAME[:TAG]`, and `pull URL|PATH|file://PATH` (http and https
 * through libcurl, see server/fetch.h). Every command takes --home DIR (default: see registry.h).
 */
#include "cli.h"

#include "server/fetch.h"
#include "server/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Parse --home and up to `max_pos` positional arguments (and --name for import). */
static int reg_args(int argc, char **argv, const char **home, const char **pos, int max_pos,
                    int *n_pos, const char **name, const char *usage) {
    *home = NULL;
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", usage);
            return -1;
        }
        if (!strcmp(a, "--home")) {
            if (!(*home = cli_value(argc, argv, &i))) return 1;
        } else if (name && !strcmp(a, "--name")) {
            if (!(*name = cli_value(argc, argv, &i))) return 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("unknown option '%s' (try '%s --help')", a, argv[0]);
        } else if (*n_pos < max_pos) {
            pos[(*n_pos)++] = a;
        } else {
            return cli_error("unexpected argument '%s'", a);
        }
    }
    if (!*home) *home = mlxr_registry_default_home();
    if (!*home) return cli_error("no home directory: pass --home DIR or set MLXR_HOME");
    return 0;
}

static mlxr_registry *open_reg(const char *home) {
    mlxr_registry *r = NULL;
    mlxr_err err = {0};
    if (mlxr_registry_open(home, &r, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        return NULL;
    }
    return r;
}

static void human_size(int64_t n, char *buf, size_t cap) {
    if (n >= (int64_t)1 << 30) snprintf(buf, cap, "%.1f GB", (double)n / (1 << 30));
    else if (n >= 1 << 20) snprintf(buf, cap, "%.1f MB", (double)n / (1 << 20));
    else snprintf(buf, cap, "%.1f KB", (double)n / 1024);
}

int cli_list(int argc, char **argv) {
    const char *home, *pos[1];
    int n_pos, rc = reg_args(argc, argv, &home, pos, 0, &n_pos, NULL,
                             "usage: mlxr list [--home DIR]\n  installed models, one per line\n");
    if (rc) return rc < 0 ? 0 : rc;
    mlxr_registry *r = open_reg(home);
    if (!r) return 1;
    mlxr_model_entry *e = NULL;
    size_t n = 0;
    mlxr_err err = {0};
    if (mlxr_registry_list(r, &e, &n, &err) != MLXR_OK) {
        mlxr_registry_close(r);
        return cli_error("%s", err.msg);
    }
    printf("%-40s %-14s %-10s %-8s %s\n", "NAME", "ID", "SIZE", "QUANT", "ARCH");
    for (size_t i = 0; i < n; i++) {
        char nt[200], sz[32];
        snprintf(nt, sizeof nt, "%s:%s", e[i].name, e[i].tag);
        human_size(e[i].size, sz, sizeof sz);
        printf("%-40s %-14.12s %-10s %-8s %s\n", nt, e[i].sha256, sz, e[i].quant, e[i].arch);
        mlxr_model_entry_clear(&e[i]);
    }
    free(e);
    mlxr_registry_close(r);
    return 0;
}

int cli_show(int argc, char **argv) {
    const char *home, *pos[1];
    int n_pos, rc = reg_args(argc, argv, &home, pos, 1, &n_pos, NULL,
                             "usage: mlxr show NAME[:TAG] [--home DIR]\n");
    if (rc) return rc < 0 ? 0 : rc;
    if (n_pos != 1) return cli_error("show needs a model name");
    mlxr_registry *r = open_reg(home);
    if (!r) return 1;
    mlxr_model_entry e;
    mlxr_err err = {0};
    if (mlxr_registry_find(r, pos[0], &e, &err) != MLXR_OK) {
        mlxr_registry_close(r);
        return cli_error("%s", err.msg);
    }
    char created[32] = "-", used[32] = "never";
    time_t t = (time_t)e.created;
    struct tm tm;
    strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
    t = (time_t)e.last_used;
    if (e.last_used) strftime(used, sizeof used, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
    printf("name:            %s:%s\npath:            %s\nformat:          %s\narchitecture:    %s\n"
           "parameters:      %lld\nquantization:    %s\nsize:            %lld bytes\n"
           "sha256:          %s\ncontext length:  %d\nchat template:   %s\n"
           "created:         %s UTC\nlast used:       %s%s\n",
           e.name, e.tag, e.path, e.format, e.arch, (long long)e.n_params, e.quant,
           (long long)e.size, e.sha256, e.n_ctx, e.chat_template ? "yes" : "no", created, used,
           e.last_used ? " UTC" : "");
    mlxr_model_entry_clear(&e);
    mlxr_registry_close(r);
    return 0;
}

int cli_rm(int argc, char **argv) {
    const char *home, *pos[1];
    int n_pos, rc = reg_args(argc, argv, &home, pos, 1, &n_pos, NULL,
                             "usage: mlxr rm NAME[:TAG] [--home DIR]\n");
    if (rc) return rc < 0 ? 0 : rc;
    if (n_pos != 1) return cli_error("rm needs a model name");
    mlxr_registry *r = open_reg(home);
    if (!r) return 1;
    mlxr_err err = {0};
    rc = mlxr_registry_remove(r, pos[0], &err) == MLXR_OK ? 0 : cli_error("%s", err.msg);
    if (!rc) printf("deleted '%s'\n", pos[0]);
    mlxr_registry_close(r);
    return rc;
}

static int import_into(mlxr_registry *r, const char *path, const char *name) {
    mlxr_model_entry e;
    mlxr_err err = {0};
    int rc = 0;
    if (mlxr_registry_import(r, path, name, &e, &err) != MLXR_OK) {
        rc = cli_error("import failed: %s", err.msg);
    } else {
        printf("imported %s:%s (%s, %s, %lld parameters, sha256 %.12s)\n", e.name, e.tag, e.arch,
               e.quant, (long long)e.n_params, e.sha256);
        mlxr_model_entry_clear(&e);
    }
    return rc;
}

static int import_file(const char *home, const char *path, const char *name) {
    mlxr_registry *r = open_reg(home);
    if (!r) return 1;
    int rc = import_into(r, path, name);
    mlxr_registry_close(r);
    return rc;
}

/* The default name for a file: its base name without ".gguf". */
static void stem(const char *path, char *buf, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
    snprintf(buf, cap, "%.*s", (int)n, b);
}

int cli_import(int argc, char **argv) {
    const char *home, *pos[1], *name = NULL;
    int n_pos, rc = reg_args(argc, argv, &home, pos, 1, &n_pos, &name,
                             "usage: mlxr import PATH [--name NAME[:TAG]] [--home DIR]\n"
                             "  copy (or hard-link) a GGUF file into the registry, verified\n");
    if (rc) return rc < 0 ? 0 : rc;
    if (n_pos != 1) return cli_error("import needs the path of a GGUF file");
    char def[256];
    if (!name) {
        stem(pos[0], def, sizeof def);
        name = def;
    }
    return import_file(home, pos[0], name);
}

/* Download progress on stderr: one line rewritten in place (at most every 100 ms) on a terminal,
 * else a line at most every second, and always the last one. */
typedef struct pull_progress {
    bool tty, shown;
    int64_t t0, last; /* monotonic ns */
    uint64_t last_done;
} pull_progress;

static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static bool pull_started(void *user, const mlxr_fetch_info *info) {
    pull_progress *p = user;
    char sz[32] = "size unknown";
    if (info->total) human_size((int64_t)info->total, sz, sizeof sz);
    fprintf(stderr, "pulling %s (%s)%s%.12s\n", info->file_name[0] ? info->file_name : "model", sz,
            info->sha256[0] ? ", sha256 " : "", info->sha256);
    p->t0 = p->last = mono_ns();
    return true;
}

static bool pull_progressed(void *user, uint64_t done, uint64_t total) {
    pull_progress *p = user;
    int64_t t = mono_ns();
    bool last = total && done == total;
    if (done == p->last_done || (!last && t - p->last < (p->tty ? 100000000 : 1000000000)))
        return true;
    p->last = t;
    p->last_done = done;
    p->shown = true;
    double mib = (double)done / 1048576.0, secs = (double)(t - p->t0) * 1e-9;
    double rate = secs > 0 ? mib / secs : 0;
    if (total)
        fprintf(stderr, "%spulling: %.1f / %.1f MiB (%d %%), %.1f MiB/s%s", p->tty ? "\r" : "", mib,
                (double)total / 1048576.0, (int)(100.0 * (double)done / (double)total), rate,
                p->tty ? "   " : "\n");
    else
        fprintf(stderr, "%spulling: %.1f MiB, %.1f MiB/s%s", p->tty ? "\r" : "", mib, rate,
                p->tty ? "   " : "\n");
    return true;
}

/* http(s): download into the registry's tmp folder (swept when a registry is opened, so an
 * interrupted pull leaves nothing behind), import from there (a hard link) with the same open
 * registry, then remove the download. */
static int pull_url(const char *home, const char *url, const char *name, bool insecure) {
    mlxr_registry *r = open_reg(home);
    if (!r) return 1;
    char part[4096];
    snprintf(part, sizeof part, "%s/models/tmp/pull-%ld-%ld.part", mlxr_registry_home(r),
             (long)getpid(), (long)time(NULL));
    pull_progress pp = {.tty = isatty(STDERR_FILENO) == 1};
    mlxr_fetch_opts o = {.insecure = insecure, .gguf_only = true, .start = pull_started,
                         .progress = pull_progressed, .user = &pp};
    mlxr_err err = {0};
    mlxr_status st = mlxr_fetch_url(url, part, &o, NULL, &err);
    if (pp.shown && pp.tty) fputc('\n', stderr);
    int rc = st != MLXR_OK ? cli_error("%s", err.msg) : import_into(r, part, name);
    unlink(part);
    mlxr_registry_close(r);
    return rc;
}

int cli_pull(int argc, char **argv) {
    const char *home, *pos[1], *name = NULL;
    bool insecure = false;
    for (int i = 1; i < argc; i++) /* pull's own flag; reg_args sees the rest */
        if (!strcmp(argv[i], "--insecure")) {
            insecure = true;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof *argv);
            argc--;
            i--;
        }
    static const char usage[] =
        "usage: mlxr pull URL|PATH|file://PATH [--name NAME[:TAG]] [--insecure] [--home DIR]\n"
        "  download (http/https) or copy a GGUF file into the registry, verified\n"
        "  (URL#sha256=HEX: the expected digest; --insecure: skip TLS checks)\n";
    int n_pos, rc = reg_args(argc, argv, &home, pos, 1, &n_pos, &name, usage);
    if (rc) return rc < 0 ? 0 : rc;
    if (n_pos != 1) return cli_error("pull needs a URL or a path");
    const char *src = pos[0];
    char def[256];
    if (!name) {
        /* the URL's last path segment, without a query string */
        char buf[256];
        snprintf(buf, sizeof buf, "%s", src);
        buf[strcspn(buf, "?#")] = '\0';
        stem(buf, def, sizeof def);
        name = def;
    }
    if (mlxr_fetch_is_url(src)) return pull_url(home, src, name, insecure);
    if (!strncmp(src, "file://", 7)) src += 7;
    else if (strstr(src, "://"))
        return cli_error("cannot pull '%s': only http://, https://, file:// and local paths", src);
    return import_file(home, src, name);
}
