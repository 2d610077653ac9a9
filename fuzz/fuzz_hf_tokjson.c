/*
 * fuzz_hf_tokjson.c - libFuzzer harness for the tokenizer.json reader of Hugging Face model
 * directories (src/model/hf_tokjson.c). The input is the file's bytes, parsed as the loader
 * parses it (jansson, duplicate keys rejected). A vocabulary that loads must tokenize (or refuse
 * with a message) and detokenize a fixed text with ids in range; a failure to load must explain
 * itself. A broken invariant traps, so the fuzzer reports it as a crash.
 *
 * Run: scripts/fuzz.sh [SECONDS] hf_tokjson   (seeds: fuzz/seeds/hf_tokjson/: a small
 * SentencePiece-style file, a small byte-level one with Llama 3's published pre-tokenizer)
 */
#include "fuzz_vocab_use.h"
#include "model/hf_impl.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *tj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!tj) return 0;
    mlxr_vocab *v = NULL;
    mlxr_err err;
    err.msg[0] = '\0';
    /* n_vocab 0: the file's own size; 300 also exercises the vocab_size checks and padding */
    const mlxr_hf_spm_opts o = {size % 2 ? 300 : 0, -1, -1, -1, -1, -1, NULL, NULL};
    if (mlxr_hf_tokjson_vocab(tj, NULL, &o, &v, &err) != MLXR_OK) {
        REQUIRE(v == NULL && err.msg[0] != '\0');
        json_decref(tj);
        return 0;
    }
    json_decref(tj); /* the vocabulary owns copies */
    static const char text[] = "Hello  world\n\t<s> caf\xc3\xa9 \xff 123 it's";
    fuzz_use_vocab(v, text, sizeof text - 1);
    return 0;
}
