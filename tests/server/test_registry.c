/*
 * test_registry.c - the model registry: SHA-256 against FIPS 180-4 vectors; import / find /
 * list / remove; bad names and non-GGUF files refused without leaving rows or files; and a
 * crash mid-import (a child killed with SIGKILL at a random moment) never leaves a half model:
 * after reopening, every row names a complete file whose hash matches, and no temp file or
 * unreferenced blob remains.
 */
#include "test.h"

#include "server/registry.h"
#include "server/sha256.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sha_hex(const char *s, size_t len, size_t repeat, char hex[65]) {
    mlxr_sha256 h;
    mlxr_sha256_init(&h);
    for (size_t i = 0; i < repeat; i++) mlxr_sha256_update(&h, s, len);
    mlxr_sha256_hex(&h, hex);
}

static void test_sha256(void) {
    char hex[65];
    sha_hex("", 0, 1, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty: %s", hex);
    sha_hex("abc", 3, 1, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc: %s", hex);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(m, strlen(m), 1, hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "448-bit: %s", hex);
    sha_hex("a", 1, 1000000, hex); /* one million 'a', fed byte by byte */
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "1M a: %s", hex);
}

static int count_files(const char *home, const char *sub) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", home, sub);
    DIR *d = opendir(p);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void file_hash(const char *path, char hex[65]) {
    size_t len = 0;
    char *data = test_read_file(path, &len);
    hex[0] = '\0';
    if (data) sha_hex(data, len, 1, hex);
    free(data);
}

/* Every row's file exists with the recorded hash; no temp files; no unreferenced blobs. */
static void check_consistent(const char *home, const char *what) {
    mlxr_registry *r = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_registry_open(home, &r, &err) == MLXR_OK, "%s: reopen: %s", what, err.msg);
    if (!r) return;
    mlxr_model_entry *e = NULL;
    size_t n = 0;
    CHECK(mlxr_registry_list(r, &e, &n, &err) == MLXR_OK, "%s: list", what);
    int distinct_blobs = 0;
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        file_hash(e[i].path, hex);
        CHECK(!strcmp(hex, e[i].sha256), "%s: row %s:%s names a file with hash '%s', want %s",
              what, e[i].name, e[i].tag, hex, e[i].sha256);
        bool first = true;
        for (size_t k = 0; k < i; k++) first &= strcmp(e[k].sha256, e[i].sha256) != 0;
        distinct_blobs += first;
    }
    CHECK(count_files(home, "models/tmp") == 0, "%s: temp files left", what);
    CHECK(count_files(home, "models/blobs") == distinct_blobs, "%s: %d blobs for %d rows", what,
          count_files(home, "models/blobs"), distinct_blobs);
    for (size_t i = 0; i < n; i++) mlxr_model_entry_clear(&e[i]);
    free(e);
    mlxr_registry_close(r);
}

static void test_basic(const char *home, const char *model, const char *model2) {
    mlxr_registry *r = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_registry_open(home, &r, &err) == MLXR_OK, "open: %s", err.msg);
    if (!r) return;
    char name[104], tag[64];
    CHECK(mlxr_registry_parse_name("llama3", name, tag, NULL) == MLXR_OK && !strcmp(tag, "latest"),
          "default tag");
    CHECK(mlxr_registry_parse_name("org/m-1.5:q8_0", name, tag, NULL) == MLXR_OK &&
              !strcmp(name, "org/m-1.5") && !strcmp(tag, "q8_0"), "name and tag");
    const char *bad[] = {"", ":x", "a:", "../x", "a/../../b", "-x", "a b", "a:b/c", "a\"b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(mlxr_registry_parse_name(bad[i], name, tag, NULL) == MLXR_ERR_INVALID, "bad name '%s'", bad[i]);

    mlxr_model_entry e;
    CHECK(mlxr_registry_import(r, model, "pydoc:q8", &e, &err) == MLXR_OK, "import: %s", err.msg);
    char hex[65];
    file_hash(model, hex);
    CHECK(!strcmp(e.sha256, hex), "sha256 %s vs %s", e.sha256, hex);
    CHECK(!strcmp(e.arch, "llama") && !strcmp(e.format, "gguf") && e.n_params > 1000000 &&
              !strcmp(e.quant, "Q8_0") && e.n_ctx > 0, "describe: %s %s %lld %s %d", e.arch,
          e.format, (long long)e.n_params, e.quant, e.n_ctx);
    mlxr_model_entry_clear(&e);
    CHECK(mlxr_registry_import(r, model, "pydoc", NULL, &err) == MLXR_OK, "second name, same blob");
    CHECK(mlxr_registry_import(r, model2, "tiny", NULL, &err) == MLXR_OK, "import 2: %s", err.msg);
    /* refused imports leave nothing behind */
    CHECK(mlxr_registry_import(r, "/nonexistent/x.gguf", "nope", NULL, &err) == MLXR_ERR_IO, "missing file");
    char junk[1024];
    snprintf(junk, sizeof junk, "%s/junk.gguf", home);
    FILE *f = fopen(junk, "wb");
    fputs("GGUF but not really a model file", f);
    fclose(f);
    CHECK(mlxr_registry_import(r, junk, "junk", NULL, &err) == MLXR_ERR_FORMAT, "junk: %s", err.msg);
    CHECK(mlxr_registry_import(r, model, "bad name", NULL, &err) == MLXR_ERR_INVALID, "bad name");
    CHECK(mlxr_registry_find(r, "junk", &e, NULL) == MLXR_ERR_NOT_FOUND, "no junk row");
    CHECK(count_files(home, "models/tmp") == 0, "no temp file after a refused import");

    CHECK(mlxr_registry_find(r, "pydoc:latest", &e, &err) == MLXR_OK && !strcmp(e.tag, "latest"), "find");
    mlxr_model_entry_clear(&e);
    mlxr_model_entry *list = NULL;
    size_t n = 0;
    CHECK(mlxr_registry_list(r, &list, &n, &err) == MLXR_OK && n == 3, "list: %zu", n);
    for (size_t i = 0; i < n; i++) mlxr_model_entry_clear(&list[i]);
    free(list);
    CHECK(count_files(home, "models/blobs") == 2, "two blobs for three rows");
    mlxr_registry_touch(r, "tiny");
    CHECK(mlxr_registry_find(r, "tiny", &e, NULL) == MLXR_OK && e.last_used > 0, "touch");
    mlxr_model_entry_clear(&e);
    /* removing one name of a shared blob keeps the blob; removing the last drops it */
    CHECK(mlxr_registry_remove(r, "pydoc", &err) == MLXR_OK, "rm pydoc");
    CHECK(count_files(home, "models/blobs") == 2, "shared blob kept");
    CHECK(mlxr_registry_remove(r, "pydoc:q8", &err) == MLXR_OK, "rm pydoc:q8");
    CHECK(count_files(home, "models/blobs") == 1, "blob removed with its last row");
    CHECK(mlxr_registry_remove(r, "pydoc:q8", &err) == MLXR_ERR_NOT_FOUND, "rm twice");
    mlxr_registry_close(r);
    unlink(junk);
    check_consistent(home, "after basic");
}

/* Import in a child and SIGKILL it after a random delay; the catalog must stay consistent. */
static void test_crash(const char *home, const char *model, uint64_t *rng) {
    int completed = 0, killed = 0;
    for (int round = 0; round < 12; round++) {
        char name[32];
        snprintf(name, sizeof name, "crash:r%d", round);
        pid_t pid = fork();
        if (pid == 0) {
            mlxr_registry *r = NULL;
            if (mlxr_registry_open(home, &r, NULL) != MLXR_OK) _exit(2);
            /* a few imports back to back so the kill lands at varied points */
            for (int k = 0; k < 3; k++) {
                char nm[40];
                snprintf(nm, sizeof nm, "%s-%d", name, k);
                if (mlxr_registry_import(r, model, nm, NULL, NULL) != MLXR_OK) _exit(3);
            }
            mlxr_registry_close(r);
            _exit(0);
        }
        struct timespec ts = {0, (long)(test_rng_u64(rng) % 400000000)}; /* 0..400 ms */
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) killed++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) completed++;
        else CHECK(0, "child failed with status %d", status);
        check_consistent(home, name);
    }
    fprintf(stderr, "crash rounds: %d killed, %d completed\n", killed, completed);
}

int main(void) {
    uint64_t rng = test_seed();
    test_sha256();
    char home[] = "/tmp/mlxr-test-registry-XXXXXX";
    if (!mkdtemp(home)) return 1;
    const char *model = MLXR_SOURCE_DIR "/models/pydoc-7M-q8_0.gguf";
    char *model2 = test_data_path("models/stories260K.gguf");
    test_basic(home, model, model2);
    test_crash(home, model, &rng);
    free(model2);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", home);
    return test_finish("server_registry");
}
