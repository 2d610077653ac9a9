/*
 * fuzz_template.c - libFuzzer harness for the chat-template interpreter (lexer, parser, evaluator,
 * filters, JSON out). The input is the template text; the variables are a fixed small
 * conversation with tools, so real templates (the seeds in fuzz/seeds/template/ are the 17 test
 * templates) run deep. Limits are tighter than the defaults so each input finishes fast; any
 * failure must carry a message, and a success must produce an output buffer.
 *
 * Run: scripts/fuzz.sh [SECONDS] template
 */
#include "template/template.h"

#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static const char VARS[] =
    "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_generation_prompt\": true,"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\","
    " \"enum\": [\"x\", \"y\"]}}, \"required\": [\"a\"]}}}],"
    " \"messages\": [{\"role\": \"system\", \"content\": \"sys\"},"
    " {\"role\": \"user\", \"content\": \"h\\u00e9llo \\u2603\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"abcdefghi\","
    " \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": \"x\"}}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"abcdefghi\", \"content\": \"42\"},"
    " {\"role\": \"assistant\", \"content\": \"done\"}, {\"role\": \"user\", \"content\": "
    "\"ok\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    jlimits lim;
    mlxr_jinja_default_limits(&lim);
    lim.max_steps = 200000;
    lim.max_output = (size_t)1 << 20;
    lim.max_mem = (size_t)64 << 20;
    char *out = NULL;
    size_t n = 0;
    mlxr_err err;
    memset(&err, 0, sizeof err);
    mlxr_status st =
        mlxr_jinja_render((const char *)data, size, VARS, sizeof VARS - 1, &lim, &out, &n, &err);
    if (st != MLXR_OK) {
        REQUIRE(out == NULL && err.code == st);
        REQUIRE(st == MLXR_ERR_INVALID || err.msg[0] != '\0'); /* raise_exception('') is empty */
    } else {
        REQUIRE(out != NULL && n <= lim.max_output && out[n] == '\0');
    }
    free(out);
    return 0;
}
