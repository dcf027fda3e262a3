/* omniforge.c: the skill export, results, buffers, logging, the key-value store and calls to
 * other skills. */
#include "omniforge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings and buffers ---------------------------------------------------------------- */

of_str of_cstr(const char *text) {
    of_str s = {text ? text : "", text ? strlen(text) : 0};
    return s;
}

size_t of_utf8_sequence(const char *text, size_t len) {
    const unsigned char *b = (const unsigned char *)text;
    if (len == 0)
        return 0;
    if (b[0] < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (b[0] >= 0xC2 && b[0] <= 0xDF) {
        n = 2;
        cp = b[0] & 0x1F;
    } else if (b[0] >= 0xE0 && b[0] <= 0xEF) {
        n = 3;
        cp = b[0] & 0x0F;
    } else if (b[0] >= 0xF0 && b[0] <= 0xF4) {
        n = 4;
        cp = b[0] & 0x07;
    } else {
        return 0; /* a continuation byte, an overlong lead (C0, C1) or beyond F4 */
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((b[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (b[i] & 0x3F);
    }
    bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
    if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return n;
}

bool of_utf8_valid(const char *text, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = of_utf8_sequence(text + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Makes room for `extra` more bytes plus a NUL; false (and `failed`) when it cannot. */
static bool buf_reserve(of_buf *buf, size_t extra) {
    if (buf->failed)
        return false;
    if (extra >= SIZE_MAX - buf->len) {
        buf->failed = true;
        return false;
    }
    size_t need = buf->len + extra + 1;
    if (need <= buf->cap)
        return true;
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *grown = realloc(buf->ptr, cap);
    if (grown == NULL) {
        buf->failed = true;
        return false;
    }
    buf->ptr = grown;
    buf->cap = cap;
    return true;
}

void of_buf_append(of_buf *buf, const void *bytes, size_t len) {
    if (!buf_reserve(buf, len))
        return;
    if (len)
        memcpy(buf->ptr + buf->len, bytes, len);
    buf->len += len;
    buf->ptr[buf->len] = '\0';
}

void of_buf_puts(of_buf *buf, const char *text) { of_buf_append(buf, text, strlen(text)); }

void of_buf_vprintf(of_buf *buf, const char *format, va_list args) {
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, format, args);
    if (n < 0) {
        buf->failed = true;
    } else if (buf_reserve(buf, (size_t)n)) {
        vsnprintf(buf->ptr + buf->len, (size_t)n + 1, format, again);
        buf->len += (size_t)n;
    }
    va_end(again);
}

void of_buf_printf(of_buf *buf, const char *format, ...) {
    va_list args;
    va_start(args, format);
    of_buf_vprintf(buf, format, args);
    va_end(args);
}

const char *of_buf_cstr(of_buf *buf) { return buf->ptr && !buf->failed ? buf->ptr : ""; }

void of_buf_free(of_buf *buf) {
    free(buf->ptr);
    *buf = (of_buf){0};
}

/* ---- results ---------------------------------------------------------------------------- */

/* A `failed` result whose message is a constant: used when memory for a real one is short. */
static of_result out_of_memory(void) {
    static const char message[] = "the skill ran out of memory";
    char *copy = malloc(sizeof message);
    if (copy)
        memcpy(copy, message, sizeof message);
    return (of_result){false, OF_FAILED, copy, copy ? sizeof message - 1 : 0};
}

of_result of_ok_n(const char *json, size_t len) {
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return out_of_memory();
    memcpy(copy, json, len);
    copy[len] = '\0';
    return (of_result){true, OF_FAILED, copy, len};
}

of_result of_ok(const char *json) { return of_ok_n(json, strlen(json)); }

of_result of_error(of_error_kind kind, const char *format, ...) {
    of_buf message = {0};
    va_list args;
    va_start(args, format);
    of_buf_vprintf(&message, format, args);
    va_end(args);
    if (message.failed) {
        of_buf_free(&message);
        return out_of_memory();
    }
    return (of_result){false, kind, message.ptr, message.len};
}

/* ---- the export --------------------------------------------------------------------------- */

static of_str from_wit(const skill_string_t *s) { return (of_str){(const char *)s->ptr, s->len}; }

/* Moves `text` into a WIT string: the bindings free it after the host has copied it. */
static skill_string_t to_wit(char *text, size_t len) {
    return (skill_string_t){(uint8_t *)text, len};
}

/* Replaces each byte that does not start a valid UTF-8 sequence with '?'. */
static void replace_invalid_utf8(char *text, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = of_utf8_sequence(text + i, len - i);
        if (n == 0) {
            text[i] = '?';
            n = 1;
        }
        i += n;
    }
}

bool exports_omniforge_skill_handler_invoke(exports_omniforge_skill_handler_invocation_t *ctx,
                                            skill_string_t *input, skill_string_t *ret,
                                            exports_omniforge_skill_handler_skill_error_t *err) {
    of_context context = {
        from_wit(&ctx->tenant),     from_wit(&ctx->skill),
        from_wit(&ctx->version),    from_wit(&ctx->request_id),
        ctx->deadline_unix_ms,
    };
    of_buf why = {0};
    of_value *value = of_parse((const char *)input->ptr, input->len, &why);
    of_result result;
    if (value == NULL) {
        result = of_error(OF_INVALID_INPUT, "the input is not JSON: %s", of_buf_cstr(&why));
    } else {
        result = of_skill_handler(&context, value);
        of_value_free(value);
    }
    of_buf_free(&why);
    exports_omniforge_skill_handler_invocation_free(ctx);
    skill_string_free(input);
    if (result.text == NULL)
        result = result.ok ? of_error(OF_FAILED, "the skill returned no output")
                           : out_of_memory();
    /* A WIT string must be UTF-8, or the host refuses the whole result. */
    if (result.ok && !of_utf8_valid(result.text, result.len)) {
        free(result.text);
        result = of_error(OF_FAILED, "the skill's output is not valid UTF-8");
    } else if (!result.ok) {
        replace_invalid_utf8(result.text, result.len);
    }
    if (result.ok) {
        *ret = to_wit(result.text, result.len);
        return true;
    }
    static const uint8_t tags[] = {
        [OF_INVALID_INPUT] = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_INVALID_INPUT,
        [OF_DENIED] = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_DENIED,
        [OF_NOT_FOUND] = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_NOT_FOUND,
        [OF_UNAVAILABLE] = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_UNAVAILABLE,
        [OF_FAILED] = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_FAILED,
    };
    of_error_kind kind = (unsigned)result.kind <= OF_FAILED ? result.kind : OF_FAILED;
    err->tag = tags[kind];
    /* Every case of skill-error carries one string, at the same place in the union. */
    err->val.failed = to_wit(result.text, result.len);
    return false;
}

/* ---- the invocation's task ---------------------------------------------------------------- */

bool of_task_id(of_buf *out) {
    skill_string_t id;
    if (!omniforge_skill_context_task_id(&id))
        return false;
    of_buf_append(out, id.ptr, id.len);
    skill_string_free(&id);
    return true;
}

uint32_t of_attempt(void) { return omniforge_skill_context_attempt(); }

/* ---- logging ------------------------------------------------------------------------------ */

void of_log(of_log_level level, const char *format, ...) {
    of_buf message = {0};
    va_list args;
    va_start(args, format);
    of_buf_vprintf(&message, format, args);
    va_end(args);
    if (!message.failed) {
        skill_string_t text = {(uint8_t *)message.ptr, message.len};
        omniforge_skill_log_log((omniforge_skill_log_level_t)level, &text);
    }
    of_buf_free(&message);
}

/* ---- key-value store ------------------------------------------------------------------------ */

static of_buf kv_message;

/* Keeps the host's message, frees the error and says which status it was. */
static of_kv_status kv_failed(omniforge_skill_kv_kv_error_t *err) {
    kv_message.len = 0;
    kv_message.failed = false;
    if (kv_message.ptr)
        kv_message.ptr[0] = '\0';
    of_kv_status status;
    switch (err->tag) {
    case OMNIFORGE_SKILL_KV_KV_ERROR_DENIED:
        status = OF_KV_DENIED;
        break;
    case OMNIFORGE_SKILL_KV_KV_ERROR_TOO_LARGE:
        status = OF_KV_TOO_LARGE;
        of_buf_append(&kv_message, err->val.too_large.ptr, err->val.too_large.len);
        break;
    case OMNIFORGE_SKILL_KV_KV_ERROR_QUOTA_EXCEEDED:
        status = OF_KV_QUOTA_EXCEEDED;
        break;
    case OMNIFORGE_SKILL_KV_KV_ERROR_NOT_A_COUNTER:
        status = OF_KV_NOT_A_COUNTER;
        break;
    default:
        status = OF_KV_UNAVAILABLE;
        of_buf_append(&kv_message, err->val.unavailable.ptr, err->val.unavailable.len);
        break;
    }
    omniforge_skill_kv_kv_error_free(err);
    return status;
}

const char *of_kv_last_message(void) { return of_buf_cstr(&kv_message); }

/* A borrowed WIT view of a C string: imports never take ownership of their arguments. */
static skill_string_t borrow(const char *text) {
    return (skill_string_t){(uint8_t *)text, strlen(text)};
}

of_kv_status of_kv_get(const char *key, of_bytes *value, bool *found) {
    skill_string_t k = borrow(key);
    skill_option_list_u8_t got;
    omniforge_skill_kv_kv_error_t err;
    *value = (of_bytes){0};
    *found = false;
    if (!omniforge_skill_kv_get(&k, &got, &err))
        return kv_failed(&err);
    if (got.is_some) {
        *found = true;
        /* An empty list's pointer is the alignment, not an allocation: never free it. */
        if (got.val.len > 0)
            *value = (of_bytes){got.val.ptr, got.val.len};
    }
    return OF_KV_OK;
}

of_kv_status of_kv_set(const char *key, const void *value, size_t len) {
    skill_string_t k = borrow(key);
    skill_list_u8_t v = {(uint8_t *)value, len};
    omniforge_skill_kv_kv_error_t err;
    return omniforge_skill_kv_set(&k, &v, &err) ? OF_KV_OK : kv_failed(&err);
}

of_kv_status of_kv_delete(const char *key) {
    skill_string_t k = borrow(key);
    omniforge_skill_kv_kv_error_t err;
    return omniforge_skill_kv_delete(&k, &err) ? OF_KV_OK : kv_failed(&err);
}

of_kv_status of_kv_exists(const char *key, bool *exists) {
    skill_string_t k = borrow(key);
    omniforge_skill_kv_kv_error_t err;
    *exists = false;
    return omniforge_skill_kv_exists(&k, exists, &err) ? OF_KV_OK : kv_failed(&err);
}

of_kv_status of_kv_list_keys(const char *prefix, uint32_t limit, of_keys *keys) {
    skill_string_t p = borrow(prefix);
    skill_list_string_t got;
    omniforge_skill_kv_kv_error_t err;
    *keys = (of_keys){0};
    if (!omniforge_skill_kv_list_keys(&p, limit, &got, &err))
        return kv_failed(&err);
    /* The same two fields in the same order: reuse the array the bindings allocated. */
    _Static_assert(sizeof(of_str) == sizeof(skill_string_t), "of_str mirrors skill_string_t");
    if (got.len == 0)
        return OF_KV_OK; /* got.ptr is not an allocation */
    keys->items = (of_str *)got.ptr;
    keys->len = got.len;
    return OF_KV_OK;
}

of_kv_status of_kv_increment(const char *key, int64_t delta, int64_t *value) {
    skill_string_t k = borrow(key);
    omniforge_skill_kv_kv_error_t err;
    return omniforge_skill_kv_increment(&k, delta, value, &err) ? OF_KV_OK : kv_failed(&err);
}

of_result of_kv_error(of_kv_status status, const char *operation) {
    const char *message = of_kv_last_message();
    const char *sep = *message ? ": " : "";
    switch (status) {
    case OF_KV_DENIED:
        return of_error(OF_DENIED, "%s: the skill may not use the key-value store", operation);
    case OF_KV_UNAVAILABLE:
        return of_error(OF_UNAVAILABLE, "%s: the key-value store is unavailable%s%s", operation,
                        sep, message);
    case OF_KV_TOO_LARGE:
        return of_error(OF_FAILED, "%s: too large%s%s", operation, sep, message);
    case OF_KV_QUOTA_EXCEEDED:
        return of_error(OF_FAILED, "%s: the key-value quota is used up", operation);
    case OF_KV_NOT_A_COUNTER:
        return of_error(OF_FAILED, "%s: the value is not a counter", operation);
    default:
        return of_error(OF_FAILED, "%s failed", operation);
    }
}

void of_bytes_free(of_bytes *bytes) {
    free(bytes->ptr);
    *bytes = (of_bytes){0};
}

void of_keys_free(of_keys *keys) {
    /* The bindings allocate only non-empty strings (an empty one points at its alignment). */
    for (size_t i = 0; i < keys->len; i++)
        if (keys->items[i].len > 0)
            free((void *)keys->items[i].ptr);
    free(keys->items);
    *keys = (of_keys){0};
}

/* ---- calling other skills ------------------------------------------------------------------ */

/* Takes over a string the bindings allocated as NUL-terminated text; NULL (and the string
 * freed) when memory is short. */
static char *adopt(skill_string_t *s) {
    /* An empty string's pointer is its alignment, not an allocation. */
    char *text = s->len > 0 ? realloc(s->ptr, s->len + 1) : malloc(1);
    if (text == NULL) {
        skill_string_free(s);
        return NULL;
    }
    text[s->len] = '\0';
    *s = (skill_string_t){0};
    return text;
}

/* A string the host answered, as an `ok` result that owns it. */
static of_result adopted(skill_string_t *s) {
    size_t len = s->len;
    char *text = adopt(s);
    return text ? (of_result){true, OF_FAILED, text, len} : out_of_memory();
}

/* A skill-error the host answered, kind and message unchanged, as an error result. */
static of_result host_error(omniforge_skill_types_skill_error_t *err) {
    static const of_error_kind kinds[] = {
        [OMNIFORGE_SKILL_TYPES_SKILL_ERROR_INVALID_INPUT] = OF_INVALID_INPUT,
        [OMNIFORGE_SKILL_TYPES_SKILL_ERROR_DENIED] = OF_DENIED,
        [OMNIFORGE_SKILL_TYPES_SKILL_ERROR_NOT_FOUND] = OF_NOT_FOUND,
        [OMNIFORGE_SKILL_TYPES_SKILL_ERROR_UNAVAILABLE] = OF_UNAVAILABLE,
        [OMNIFORGE_SKILL_TYPES_SKILL_ERROR_FAILED] = OF_FAILED,
    };
    of_error_kind kind = err->tag < sizeof kinds / sizeof *kinds ? kinds[err->tag] : OF_FAILED;
    /* Every case of skill-error carries one string, at the same place in the union. */
    size_t len = err->val.failed.len;
    char *text = adopt(&err->val.failed);
    return text ? (of_result){false, kind, text, len} : out_of_memory();
}

of_result of_skills_invoke(const char *name, const char *version, const char *input_json) {
    if (version == NULL)
        version = "";
    if (input_json == NULL)
        return of_error(OF_FAILED, "invoking %s: no input (an unfinished JSON writer?)", name);
    skill_string_t n = borrow(name), v = borrow(version), in = borrow(input_json);
    /* A WIT string must be UTF-8, or the host ends the whole skill. */
    if (!of_utf8_valid((const char *)n.ptr, n.len) || !of_utf8_valid((const char *)v.ptr, v.len) ||
        !of_utf8_valid((const char *)in.ptr, in.len))
        return of_error(OF_FAILED, "invoking a skill: its name, version or input is not UTF-8");
    skill_string_t out;
    omniforge_skill_types_skill_error_t err;
    if (omniforge_skill_skills_invoke(&n, &v, &in, &out, &err))
        return adopted(&out);
    return host_error(&err);
}

of_result of_secret_get(const char *name) {
    if (name == NULL)
        return of_error(OF_FAILED, "reading a secret: no name");
    skill_string_t n = borrow(name);
    if (!of_utf8_valid((const char *)n.ptr, n.len))
        return of_error(OF_FAILED, "reading a secret: its name is not UTF-8");
    skill_string_t value;
    omniforge_skill_types_skill_error_t err;
    if (omniforge_skill_secrets_get(&n, &value, &err))
        return adopted(&value);
    return host_error(&err);
}
