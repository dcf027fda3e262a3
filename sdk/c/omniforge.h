/*
 * omniforge.h: the OmniForge C SDK. A skill is one C function from the caller's JSON input
 * to a JSON result or an error, with logging, the key-value store, outbound HTTP and calls
 * to other skills through the host:
 *
 *     #include "omniforge.h"
 *
 *     static of_result greet(const of_context *ctx, const of_value *input) {
 *         const char *name = of_get_string(input, "name");
 *         if (name == NULL || *name == '\0')
 *             return of_error(OF_INVALID_INPUT, "name must not be blank");
 *         of_json_writer out = {0};
 *         of_json_begin_object(&out);
 *         of_json_key(&out, "greeting");
 *         of_json_stringf(&out, "Hello, %s!", name);
 *         of_json_end_object(&out);
 *         return of_ok_json(&out);
 *     }
 *
 *     OF_SKILL(greet)
 *
 * It builds on the bindings that wit-bindgen's C generator writes for the world
 * `omniforge:skill/skill` (skill.h, skill.c, skill_component_type.o); `omniforge skill
 * build` generates them, compiles for wasm32-wasi and adapts the module into a component.
 * Everything the SDK returns is owned by the caller unless its comment says otherwise; each
 * invocation runs in a fresh instance, so a leak ends with the call, but the SDK frees what
 * it allocates.
 */
#ifndef OMNIFORGE_H
#define OMNIFORGE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "skill.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define OF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define OF_PRINTF(fmt, args)
#endif

/* ---------------------------------------------------------------------------------------
 * Strings and buffers
 * ------------------------------------------------------------------------------------- */

/* Bytes with a length; not NUL-terminated unless a comment says so. */
typedef struct of_str {
    const char *ptr;
    size_t len;
} of_str;

/* An of_str of a NUL-terminated C string (NULL gives the empty string). */
of_str of_cstr(const char *text);

/* A growable byte buffer. Zero-initialise it (`of_buf b = {0};`); on allocation failure it
 * stops growing and sets `failed`, so a chain of appends needs one check at the end. */
typedef struct of_buf {
    char *ptr;
    size_t len;
    size_t cap;
    bool failed;
} of_buf;

void of_buf_append(of_buf *buf, const void *bytes, size_t len);
void of_buf_puts(of_buf *buf, const char *text);
void of_buf_printf(of_buf *buf, const char *format, ...) OF_PRINTF(2, 3);
void of_buf_vprintf(of_buf *buf, const char *format, va_list args);
/* The length of the valid UTF-8 sequence (1 to 4 bytes) at the start of `text`, or 0 if it
 * is not one (overlong forms, surrogates and values above U+10FFFF are not). */
size_t of_utf8_sequence(const char *text, size_t len);
/* Whether `len` bytes of `text` are valid UTF-8 (what WIT strings and JSON require). */
bool of_utf8_valid(const char *text, size_t len);

/* The contents as a NUL-terminated string owned by the buffer ("" when empty). */
const char *of_buf_cstr(of_buf *buf);
void of_buf_free(of_buf *buf);

/* ---------------------------------------------------------------------------------------
 * The skill
 * ------------------------------------------------------------------------------------- */

/* Who is calling. Valid during the call; the host has already authorised it, so use it for
 * logs and deadlines, not for access decisions. */
typedef struct of_context {
    of_str tenant;
    /* `namespace/name` of this skill. */
    of_str skill;
    /* Exact version of the package being run. */
    of_str version;
    of_str request_id;
    /* Milliseconds since the Unix epoch at which the host ends the invocation. */
    uint64_t deadline_unix_ms;
} of_context;

/* The durable task this invocation runs for (`tsk_…`), appended to `out`; false (and `out`
 * untouched) for a synchronous call. A task runs at least once (a run lost with its server
 * runs again): key side effects outside the platform on it to make them happen once. */
bool of_task_id(of_buf *out);

/* Which run of the task this is: 1 for the first, 2 after a lost run; 1 without a task. */
uint32_t of_attempt(void);

/* The kinds of error a skill returns on purpose (WIT `skill-error`). */
typedef enum of_error_kind {
    /* The input is well-formed but not acceptable. */
    OF_INVALID_INPUT,
    /* The skill was not allowed something it needed. */
    OF_DENIED,
    /* Something the input referred to does not exist. */
    OF_NOT_FOUND,
    /* A dependency is unavailable; retrying later may succeed. */
    OF_UNAVAILABLE,
    /* Any other failure. */
    OF_FAILED,
} of_error_kind;

/* What a skill returns: JSON output (`ok`) or an error of `kind`; `text` is the JSON or the
 * message, owned by the result. Make one with of_ok, of_ok_json or of_error. */
typedef struct of_result {
    bool ok;
    of_error_kind kind;
    char *text;
    size_t len;
} of_result;

/* Success with `json` (copied), which must be JSON text matching the output schema. */
of_result of_ok(const char *json);
/* Success with `len` bytes of JSON text (copied). */
of_result of_ok_n(const char *json, size_t len);
/* An error of `kind`, its message formatted like printf. */
of_result of_error(of_error_kind kind, const char *format, ...) OF_PRINTF(2, 3);

typedef struct of_value of_value;

/* Declares `fn` as the skill: `of_result fn(const of_context *ctx, const of_value *input)`.
 * `input` is the caller's JSON, parsed (and already checked against the manifest's input
 * schema by the host); it is freed when `fn` returns. Use once, at file scope. */
#define OF_SKILL(fn)                                                                        \
    of_result of_skill_handler(const of_context *ctx, const of_value *input) {              \
        return fn(ctx, input);                                                               \
    }

/* Defined by OF_SKILL; the SDK's export calls it. */
of_result of_skill_handler(const of_context *ctx, const of_value *input);

/* ---------------------------------------------------------------------------------------
 * JSON values (reading)
 * ------------------------------------------------------------------------------------- */

/* The deepest nesting the parser reads and the writer writes. */
#define OF_JSON_MAX_DEPTH 128

/* The JSON types. */
typedef enum of_type { OF_NULL, OF_BOOL, OF_NUMBER, OF_STRING, OF_ARRAY, OF_OBJECT } of_type;

/* Parses JSON text into a tree of values, owned by the caller (of_value_free). Returns NULL
 * on malformed input (including invalid UTF-8 and numbers beyond a double's range) or
 * nesting deeper than OF_JSON_MAX_DEPTH, with the reason in `error` when it is not NULL. */
of_value *of_parse(const char *text, size_t len, of_buf *error);
void of_value_free(of_value *value);

/* The accessors take NULL (a missing value) and answer as for a value of another type, so
 * lookups chain: of_get_string(of_get(input, "user"), "name"). */
of_type of_type_of(const of_value *value); /* OF_NULL for NULL */
bool of_is_null(const of_value *value);    /* JSON null, not a missing value */
/* A member of an object; NULL when absent (the last of duplicate keys wins). */
const of_value *of_get(const of_value *object, const char *key);
/* An element of an array; NULL when out of range. */
const of_value *of_at(const of_value *array, size_t index);
/* Elements of an array, members of an object, bytes of a string; 0 otherwise. */
size_t of_len(const of_value *value);
/* The key (NUL-terminated, but may hold NULs: use its len) and value of an object's
 * `index`th member, in document order. */
of_str of_key_at(const of_value *object, size_t index);
const of_value *of_value_at(const of_value *object, size_t index);
/* A string's text, NUL-terminated (it may hold NULs too: use of_string_n); NULL otherwise. */
const char *of_string(const of_value *value);
of_str of_string_n(const of_value *value);
/* A number's value; false (and *out untouched) for other types. */
bool of_number(const of_value *value, double *out);
/* A number whose value is an integer in int64 range (2, -7, 2.0, 3e2), read exactly from its
 * digits (no rounding through double); false for 1.5, 1e-400 or 2^63. */
bool of_int(const of_value *value, int64_t *out);
bool of_bool(const of_value *value, bool *out);
/* of_string(of_get(object, key)). */
const char *of_get_string(const of_value *object, const char *key);

/* ---------------------------------------------------------------------------------------
 * JSON text (writing)
 * ------------------------------------------------------------------------------------- */

/* Writes JSON text, adding the commas, colons and escapes. Zero-initialise it; misuse (a
 * value where a key belongs, two top-level values, unbalanced ends, a key without a value,
 * nesting deeper than OF_JSON_MAX_DEPTH, NaN or infinity, a string that is not UTF-8) or
 * running out of memory marks it failed, and of_ok_json then returns a `failed` error
 * rather than broken JSON. (of_json_raw and of_ok trust the text they are given.) */
typedef struct of_json_writer {
    of_buf buf;
    int depth;
    /* Per level, a bit: 1 in an object, 0 in an array. */
    uint64_t in_object[OF_JSON_MAX_DEPTH / 64 + 1];
    /* Per level, a bit: whether a value was written (so the next one needs a comma). */
    uint64_t has_items[OF_JSON_MAX_DEPTH / 64 + 1];
    bool after_key;
    bool failed;
} of_json_writer;

void of_json_begin_object(of_json_writer *w);
void of_json_end_object(of_json_writer *w);
void of_json_begin_array(of_json_writer *w);
void of_json_end_array(of_json_writer *w);
/* A member's key; the next call writes its value. */
void of_json_key(of_json_writer *w, const char *key);
void of_json_string(of_json_writer *w, const char *text);
void of_json_string_n(of_json_writer *w, const char *text, size_t len);
void of_json_stringf(of_json_writer *w, const char *format, ...) OF_PRINTF(2, 3);
void of_json_int(of_json_writer *w, int64_t number);
/* A finite double (shortest text that reads back the same); NaN and infinities fail. */
void of_json_double(of_json_writer *w, double number);
void of_json_bool(of_json_writer *w, bool value);
void of_json_null(of_json_writer *w);
/* A value as it is: `json` must already be JSON text. */
void of_json_raw(of_json_writer *w, const char *json, size_t len);
/* A parsed value, written back as JSON. */
void of_json_value(of_json_writer *w, const of_value *value);
/* The written text, if complete and well-formed; NULL otherwise. Owned by the writer. */
const char *of_json_text(of_json_writer *w);
void of_json_writer_free(of_json_writer *w);
/* Success with the writer's JSON (the writer is freed), or `failed` if it is not complete. */
of_result of_ok_json(of_json_writer *w);

/* ---------------------------------------------------------------------------------------
 * Logging: into the host's logs, tagged with tenant, skill and request id. The host bounds
 * message size and count; extra messages are dropped, never an error.
 * ------------------------------------------------------------------------------------- */

typedef enum of_log_level { OF_TRACE, OF_DEBUG, OF_INFO, OF_WARN, OF_ERROR } of_log_level;

void of_log(of_log_level level, const char *format, ...) OF_PRINTF(2, 3);

/* ---------------------------------------------------------------------------------------
 * Key-value store: scoped to the tenant and the skill; needs `[permissions] kv = true` in
 * the manifest and `world = "skill"`. Each call returns OF_KV_OK or why it failed; the
 * host's message for the last failure is of_kv_last_message().
 * ------------------------------------------------------------------------------------- */

typedef enum of_kv_status {
    OF_KV_OK,
    /* The skill was not granted the store. */
    OF_KV_DENIED,
    /* The key or value exceeds the host's limits. */
    OF_KV_TOO_LARGE,
    /* The tenant's storage quota is used up. */
    OF_KV_QUOTA_EXCEEDED,
    /* of_kv_increment on a value that is not an 8-byte counter. */
    OF_KV_NOT_A_COUNTER,
    /* The store could not complete the operation; retrying may succeed. */
    OF_KV_UNAVAILABLE,
} of_kv_status;

/* A value read from the store, owned by the caller (of_bytes_free). */
typedef struct of_bytes {
    uint8_t *ptr;
    size_t len;
} of_bytes;

/* Keys listed from the store, owned by the caller (of_keys_free). */
typedef struct of_keys {
    of_str *items;
    size_t len;
} of_keys;

/* Reads `key` into `*value`; `*found` says whether it exists (value empty if not). */
of_kv_status of_kv_get(const char *key, of_bytes *value, bool *found);
of_kv_status of_kv_set(const char *key, const void *value, size_t len);
of_kv_status of_kv_delete(const char *key);
of_kv_status of_kv_exists(const char *key, bool *exists);
/* Keys starting with `prefix`, in byte order, at most `limit` (the host may cap it). */
of_kv_status of_kv_list_keys(const char *prefix, uint32_t limit, of_keys *keys);
/* Adds `delta` to the counter under `key` (missing = 0) and stores the result in `*value`. */
of_kv_status of_kv_increment(const char *key, int64_t delta, int64_t *value);
/* The host's words about the last failed call ("" if it gave none). Owned by the SDK. */
const char *of_kv_last_message(void);
/* The skill error that reports a failed kv call: denied and unavailable keep their kind,
 * the rest are `failed`; the message names the operation. */
of_result of_kv_error(of_kv_status status, const char *operation);
void of_bytes_free(of_bytes *bytes);
void of_keys_free(of_keys *keys);

/* ---------------------------------------------------------------------------------------
 * Calling other skills: needs `world = "skill"` and each callee under `[permissions]
 * skills` with a version requirement (`skills = { "examples/text-stats" = "^0.1" }`). The
 * callee runs in its own sandbox with its own permissions, for the same tenant, and shares
 * this invocation's budget: its fuel comes out of what is left of ours, and it ends no later
 * than our deadline.
 * ------------------------------------------------------------------------------------- */

/* Invokes skill `name` (`namespace/name`) with `input_json` (JSON text) and returns the
 * callee's output (`ok`, `text` its JSON text, NUL-terminated) or the error the host
 * answered, kind and message unchanged: returning that result from the skill passes the
 * callee's error through. Errors: OF_DENIED (not granted, not installed by the tenant, a
 * cycle, or the call chain too deep), OF_NOT_FOUND (no such skill or no matching version),
 * OF_INVALID_INPUT (the callee refused the input), OF_FAILED (the callee ran out of a limit,
 * timed out, trapped or broke its output schema), OF_UNAVAILABLE (the callee cannot start
 * now; retrying may succeed), or the callee's own error of any kind.
 * `version` narrows the manifest's requirement for this call ("=0.1.2"); NULL or "" uses
 * the manifest's. A NULL `input_json` (what of_json_text gives for an unfinished writer)
 * or text that is not UTF-8 is OF_FAILED without a call. The result is the caller's:
 * return it, or free(result.text). */
of_result of_skills_invoke(const char *name, const char *version, const char *input_json);

/* ---------------------------------------------------------------------------------------
 * The tenant's secrets (since WIT 0.1.3): API keys and passwords the tenant's owners and
 * admins set, read by name. Needs `world = "skill"` and the name in `[permissions] secrets`.
 * Keep a value only as long as the call that needs it; never log it or return it.
 * ------------------------------------------------------------------------------------- */

/* Reads the tenant's secret `name`: `ok` with `text` its value (NUL-terminated, `len` bytes),
 * or the host's error: OF_DENIED (the manifest does not declare `name`), OF_NOT_FOUND (the
 * tenant has not set it), OF_UNAVAILABLE (the store cannot be read now). A NULL `name` or
 * one that is not UTF-8 is OF_FAILED without a call. The result is the caller's: wipe and
 * free(result.text) when done, or return the error. */
of_result of_secret_get(const char *name);

/* ---------------------------------------------------------------------------------------
 * Outbound HTTP (blocking), over wasi:http: needs `world = "skill"` and the destination's
 * host in `[permissions] http`; the host refuses others (OF_HTTP_DENIED).
 * ------------------------------------------------------------------------------------- */

/* A header. */
typedef struct of_header {
    const char *name;
    const char *value;
} of_header;

/* A request; zero-initialise it and set what you need. */
typedef struct of_http_request {
    /* "GET" when NULL. */
    const char *method;
    /* An absolute http:// or https:// URL. */
    const char *url;
    const of_header *headers;
    size_t header_count;
    const void *body;
    size_t body_len;
    /* The largest response body accepted (0: 16 MiB); more is OF_HTTP_TOO_LARGE. */
    size_t max_body_bytes;
} of_http_request;

/* A received header: name (lower-case) and value, each NUL-terminated. */
typedef struct of_http_header {
    of_str name;
    of_str value;
} of_http_header;

/* A whole response, owned by the caller (of_http_response_free). */
typedef struct of_http_response {
    uint16_t status;
    of_http_header *headers;
    size_t header_count;
    /* The body, NUL-terminated for convenience (`body_len` excludes the NUL). */
    char *body;
    size_t body_len;
} of_http_response;

typedef enum of_http_status {
    OF_HTTP_OK,
    /* The host refused the destination (not in the manifest's allow-list or the policy). */
    OF_HTTP_DENIED,
    /* The URL, method or a header cannot be sent. */
    OF_HTTP_INVALID_REQUEST,
    /* The response body is larger than max_body_bytes. */
    OF_HTTP_TOO_LARGE,
    /* DNS, connection, TLS, timeout or protocol failure; retrying may succeed. */
    OF_HTTP_UNAVAILABLE,
} of_http_status;

/* Sends the request and reads the whole response into `*response` (any status: a 404 is
 * OF_HTTP_OK with status 404). */
of_http_status of_http_send(const of_http_request *request, of_http_response *response);
/* What went wrong in the last failed of_http_send. Owned by the SDK. */
const char *of_http_last_message(void);
/* The skill error that reports a failed send: denied and unavailable keep their kind, an
 * invalid request or a too-large body is `failed`; the message names the operation. */
of_result of_http_error(of_http_status status, const char *operation);
/* The first value of header `name` (any case), NUL-terminated; NULL if absent. */
const char *of_http_header_value(const of_http_response *response, const char *name);
void of_http_response_free(of_http_response *response);

#ifdef __cplusplus
}
#endif

#endif /* OMNIFORGE_H */
