/*
 * test_config.c - the serve configuration file: keys, values, quotes, comments, repeated keys,
 * and malformed lines refused with the line number.
 */
#include "test.h"

#include "server/config.h"

#include <unistd.h>

static const char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mlxr-test-config-%d", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

int main(void) {
    mlxr_config_kv *kv = NULL;
    size_t n = 0;
    mlxr_err err = {0};
    const char *p = write_tmp("# comment\n\n  host = 0.0.0.0  \nport=8080 # trailing comment\n"
                              "api-key = \"sk # not a comment\"\napi-key = two\ncors=*\n");
    CHECK(mlxr_config_read(p, &kv, &n, &err) == MLXR_OK, "read: %s", err.msg);
    CHECK(n == 5, "5 settings, got %zu", n);
    if (n == 5) {
        CHECK(!strcmp(kv[0].key, "host") && !strcmp(kv[0].value, "0.0.0.0") && kv[0].line == 3, "host");
        CHECK(!strcmp(kv[1].key, "port") && !strcmp(kv[1].value, "8080"), "port '%s'", kv[1].value);
        CHECK(!strcmp(kv[2].value, "sk # not a comment"), "quoted '%s'", kv[2].value);
        CHECK(!strcmp(kv[3].key, "api-key") && !strcmp(kv[3].value, "two"), "repeated key");
        CHECK(!strcmp(kv[4].value, "*"), "cors");
    }
    mlxr_config_free(kv, n);
    p = write_tmp("host = x\nthis line has no equals sign\n");
    CHECK(mlxr_config_read(p, &kv, &n, &err) == MLXR_ERR_FORMAT && strstr(err.msg, ":2:"),
          "malformed line named: %s", err.msg);
    CHECK(kv == NULL && n == 0, "nothing returned on error");
    p = write_tmp(" = value\n");
    CHECK(mlxr_config_read(p, &kv, &n, &err) == MLXR_ERR_FORMAT, "empty key");
    unlink(p);
    CHECK(mlxr_config_read("/nonexistent/mlxr.conf", &kv, &n, &err) == MLXR_ERR_IO, "missing file");
    return test_finish("server_config");
}
