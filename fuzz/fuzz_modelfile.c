/*
 * fuzz_modelfile.c - libFuzzer harness for the Modelfile parser of POST /api/create
 * (src/server/modelfile.c): any bytes parse or fail cleanly; whatever parses renders as a
 * Modelfile that parses again, and its catalog JSON reads back. Byte 0 odd: the rest is also
 * tried as the structured JSON fields.
 * The server source is compiled into the harness because the fuzz build links only libmlxr.
 */
#include "../src/server/modelfile.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    mlxr_modelfile mf;
    mlxr_err err;
    if (mlxr_modelfile_parse(text, len, &mf, &err) == MLXR_OK) {
        char *r = mlxr_modelfile_render(&mf, "m");
        mlxr_modelfile again;
        if (r && mlxr_modelfile_parse(r, strlen(r), &again, &err) == MLXR_OK)
            mlxr_modelfile_free(&again);
        free(r);
        bool oom = false;
        char *js = mlxr_modelfile_to_json(&mf, &oom);
        json_t *o = js ? json_loads(js, 0, NULL) : NULL;
        mlxr_modelfile back = {0};
        if (o && mlxr_modelfile_from_json(o, &back, &err) != MLXR_OK) __builtin_trap();
        mlxr_modelfile_free(&back);
        json_decref(o);
        free(js);
        free(mlxr_modelfile_params_text(&mf));
        mlxr_modelfile_free(&mf);
    }
    if (data[0] & 1) {
        json_t *o = json_loadb(text, len, 0, NULL);
        mlxr_modelfile s = {0};
        if (json_is_object(o)) mlxr_modelfile_from_json(o, &s, &err);
        mlxr_modelfile_free(&s);
        json_decref(o);
    }
    return 0;
}
