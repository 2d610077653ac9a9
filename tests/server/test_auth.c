/*
 * test_auth.c - API keys: constant-time equality, Bearer parsing, several keys, the env list.
 */
#include "test.h"

#include "server/auth.h"

int main(void) {
    CHECK(mlxr_auth_equal("abc", 3, "abc", 3), "equal");
    CHECK(!mlxr_auth_equal("abc", 3, "abd", 3), "last byte differs");
    CHECK(!mlxr_auth_equal("abc", 3, "abcd", 4), "prefix is not equal");
    CHECK(!mlxr_auth_equal("", 0, "a", 1), "empty vs one");
    CHECK(mlxr_auth_equal("", 0, "", 0), "empty equal");
    CHECK(!mlxr_auth_equal("a\0b", 3, "a\0c", 3), "bytes after NUL compared");

    mlxr_auth a = {0};
    CHECK(mlxr_auth_check(&a, NULL), "no keys: open");
    CHECK(mlxr_auth_add(&a, "sk-one") && mlxr_auth_add_list(&a, " sk-two , sk-three,,"), "add");
    CHECK(a.n_keys == 3, "3 keys, got %zu", a.n_keys);
    CHECK(!mlxr_auth_check(&a, NULL), "missing header");
    CHECK(!mlxr_auth_check(&a, "sk-one"), "no Bearer scheme");
    CHECK(!mlxr_auth_check(&a, "Basic sk-one"), "wrong scheme");
    CHECK(mlxr_auth_check(&a, "Bearer sk-one"), "first key");
    CHECK(mlxr_auth_check(&a, "bearer sk-two"), "scheme is case-insensitive");
    CHECK(mlxr_auth_check(&a, "Bearer sk-three "), "trailing space ignored");
    CHECK(!mlxr_auth_check(&a, "Bearer sk-thre"), "prefix of a key");
    CHECK(!mlxr_auth_check(&a, "Bearer sk-threee"), "key plus a byte");
    CHECK(!mlxr_auth_check(&a, "Bearer "), "empty token");
    mlxr_auth_free(&a);
    CHECK(a.n_keys == 0, "freed");
    return test_finish("server_auth");
}
