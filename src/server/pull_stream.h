/*
 * pull_stream.h - POST /api/pull of an http(s) URL with live progress, as Ollama streams it.
 */
#ifndef MLXR_SERVER_PULL_STREAM_H
#define MLXR_SERVER_PULL_STREAM_H

#include "server/http.h"

/* Download url on a worker thread into the registry's tmp folder, check it (GGUF magic, size
 * limit, announced digest), import it as `name` (a valid NAME[:TAG]) and answer r:
 *  - stream: once the server's response has begun, NDJSON lines as they happen:
 *    {"status":"pulling manifest"}, {"status":"pulling <digest prefix | file name>",
 *    "digest"?,"total"?,"completed"} (at most every 100 ms or each 1 %), {"status":"verifying
 *    sha256 digest"}, {"status":"writing manifest"}, {"status":"success"}; a failure after the
 *    start is a last {"error":"..."} line;
 *  - not stream: {"status":"success"} when done;
 *  - a failure before the body begins (connection, HTTP status, size) is an HTTP error (502;
 *    400 for a bad request), in both modes.
 * The connection thread only waits and relays; a client that hangs up, or a stopping server,
 * cancels the download (the partial file is removed, no row is written). The connection joins
 * its worker before it finishes, so no worker outlives the server. */
enum MHD_Result mlxr_pull_url(mlxr_http_req *r, const char *url, const char *name, bool stream,
                              bool insecure);

#endif
