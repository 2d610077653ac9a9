/*
 * fuzz_spm_model.c - libFuzzer harness for the SentencePiece tokenizer.model reader of Hugging
 * Face model directories (src/model/hf_spm.c, a hand-written protobuf parser). The input is the
 * file's bytes. A vocabulary that loads must tokenize (or refuse with a message) and detokenize
 * a fixed text with ids in range; a failure to load must explain itself. A broken invariant
 * traps, so the fuzzer reports it as a crash.
 *
 * Run: scripts/fuzz.sh [SECONDS] spm_model   (seeds: fuzz/seeds/spm_model/, made by
 * fuzz/make_spm_model_seeds.py)
 */
#include "fuzz_vocab_use.h"
#include "model/hf_impl.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxr_vocab *v = NULL;
    mlxr_err err;
    err.msg[0] = '\0';
    const mlxr_hf_spm_opts o = {0, -1, -1, -1, -1, -1, NULL, NULL};
    if (mlxr_hf_spm_vocab(data, size, &o, &v, &err) != MLXR_OK) {
        REQUIRE(v == NULL && err.msg[0] != '\0');
        return 0;
    }
    static const char text[] = "Hello  world\n\t<s> caf\xc3\xa9 \xff 123";
    fuzz_use_vocab(v, text, sizeof text - 1);
    return 0;
}
