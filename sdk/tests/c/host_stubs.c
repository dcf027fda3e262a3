/* The host's side of the C SDK's imports, for running the SDK natively in unit tests: the
 * key-value store and skill calls answer from a fixed table the way the bindings do (an empty
 * list's pointer is its alignment, not an allocation), logging prints, the task is what the
 * test set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skill.h"

void omniforge_skill_log_log(omniforge_skill_log_level_t level, skill_string_t *message) {
    printf("log %d: %.*s\n", level, (int)message->len, (const char *)message->ptr);
}

/* What cabi_realloc returns for `size` bytes: the alignment for 0, like the host's lowering. */
static void *host_alloc(size_t size, size_t align) {
    return size == 0 ? (void *)align : malloc(size);
}

static bool key_is(skill_string_t *key, const char *name) {
    return key->len == strlen(name) && memcmp(key->ptr, name, key->len) == 0;
}

bool omniforge_skill_kv_get(skill_string_t *key, skill_option_list_u8_t *ret,
                            omniforge_skill_kv_kv_error_t *err) {
    (void)err;
    ret->is_some = key_is(key, "empty") || key_is(key, "full");
    const char *value = key_is(key, "full") ? "stored" : "";
    ret->val.len = strlen(value);
    ret->val.ptr = host_alloc(ret->val.len, 1);
    memcpy(ret->val.ptr, value, ret->val.len);
    return true;
}

bool omniforge_skill_kv_set(skill_string_t *key, skill_list_u8_t *value,
                            omniforge_skill_kv_kv_error_t *err) {
    (void)value;
    if (!key_is(key, "too-large"))
        return true;
    static const char why[] = "values are limited to 1 MiB";
    err->tag = OMNIFORGE_SKILL_KV_KV_ERROR_TOO_LARGE;
    err->val.too_large.len = sizeof why - 1;
    err->val.too_large.ptr = host_alloc(sizeof why - 1, 1);
    memcpy(err->val.too_large.ptr, why, sizeof why - 1);
    return false;
}

bool omniforge_skill_kv_delete(skill_string_t *key, omniforge_skill_kv_kv_error_t *err) {
    (void)key;
    err->tag = OMNIFORGE_SKILL_KV_KV_ERROR_DENIED;
    return false;
}

bool omniforge_skill_kv_exists(skill_string_t *key, bool *ret, omniforge_skill_kv_kv_error_t *err) {
    (void)err;
    *ret = key_is(key, "full");
    return true;
}

bool omniforge_skill_kv_list_keys(skill_string_t *prefix, uint32_t limit, skill_list_string_t *ret,
                                  omniforge_skill_kv_kv_error_t *err) {
    (void)limit;
    (void)err;
    /* "none": no keys; anything else: "a" and "" (an empty key is a string of length 0). */
    ret->len = key_is(prefix, "none") ? 0 : 2;
    ret->ptr = host_alloc(ret->len * sizeof *ret->ptr, 4);
    if (ret->len) {
        ret->ptr[0] = (skill_string_t){host_alloc(1, 1), 1};
        ret->ptr[0].ptr[0] = 'a';
        ret->ptr[1] = (skill_string_t){host_alloc(0, 1), 0};
    }
    return true;
}

bool omniforge_skill_kv_increment(skill_string_t *key, int64_t delta, int64_t *ret,
                                  omniforge_skill_kv_kv_error_t *err) {
    (void)key;
    (void)delta;
    (void)ret;
    err->tag = OMNIFORGE_SKILL_KV_KV_ERROR_NOT_A_COUNTER;
    return false;
}

/* A string the bindings allocated for the guest, copied from `len` bytes of `text`. */
static skill_string_t host_string(const char *text, size_t len) {
    skill_string_t s = {host_alloc(len, 1), len};
    if (len)
        memcpy(s.ptr, text, len);
    return s;
}

/* "acme/echo" answers its input; "acme/version" the version requirement, as a JSON string;
 * "acme/empty" an empty output; "acme/denied" denied without a message; anything else is
 * not found. */
bool omniforge_skill_skills_invoke(skill_string_t *name, skill_string_t *version_requirement,
                                   skill_string_t *input, skill_string_t *ret,
                                   omniforge_skill_skills_skill_error_t *err) {
    if (key_is(name, "acme/echo")) {
        *ret = host_string((const char *)input->ptr, input->len);
        return true;
    }
    if (key_is(name, "acme/version")) {
        char quoted[64];
        int n = snprintf(quoted, sizeof quoted, "\"%.*s\"", (int)version_requirement->len,
                         (const char *)version_requirement->ptr);
        *ret = host_string(quoted, (size_t)n);
        return true;
    }
    if (key_is(name, "acme/empty")) {
        *ret = host_string("", 0);
        return true;
    }
    if (key_is(name, "acme/denied")) {
        err->tag = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_DENIED;
        err->val.denied = host_string("", 0);
        return false;
    }
    static const char why[] = "no skill named that";
    err->tag = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_NOT_FOUND;
    err->val.not_found = host_string(why, sizeof why - 1);
    return false;
}

/* Secrets: `api-token` is set, `undeclared` is not declared, anything else is not set. */
bool omniforge_skill_secrets_get(skill_string_t *name, skill_string_t *ret,
                                 omniforge_skill_secrets_skill_error_t *err) {
    if (key_is(name, "api-token")) {
        static const char value[] = "s3cr\xc3\xa9t";
        *ret = host_string(value, sizeof value - 1);
        return true;
    }
    if (key_is(name, "undeclared")) {
        static const char why[] = "secret \"undeclared\" is not declared";
        err->tag = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_DENIED;
        err->val.denied = host_string(why, sizeof why - 1);
        return false;
    }
    static const char why[] = "the tenant has not set it";
    err->tag = OMNIFORGE_SKILL_TYPES_SKILL_ERROR_NOT_FOUND;
    err->val.not_found = host_string(why, sizeof why - 1);
    return false;
}

/* The invocation's task: set by the tests through `stub_task`. */
static const char *task_id;
static uint32_t task_attempt = 1;

void stub_task(const char *id, uint32_t attempt) {
    task_id = id;
    task_attempt = attempt;
}

bool omniforge_skill_context_task_id(skill_string_t *ret) {
    if (task_id == NULL)
        return false;
    *ret = host_string(task_id, strlen(task_id));
    return true;
}

uint32_t omniforge_skill_context_attempt(void) { return task_attempt; }

/* The generated frees, as skill.c has them, for what the SDK hands back to the bindings. */
void omniforge_skill_kv_kv_error_free(omniforge_skill_kv_kv_error_t *ptr) {
    if (ptr->tag == OMNIFORGE_SKILL_KV_KV_ERROR_TOO_LARGE && ptr->val.too_large.len > 0)
        free(ptr->val.too_large.ptr);
    if (ptr->tag == OMNIFORGE_SKILL_KV_KV_ERROR_UNAVAILABLE && ptr->val.unavailable.len > 0)
        free(ptr->val.unavailable.ptr);
}

void skill_string_free(skill_string_t *ret) {
    if (ret->len > 0)
        free(ret->ptr);
    ret->ptr = NULL;
    ret->len = 0;
}

void exports_omniforge_skill_handler_invocation_free(exports_omniforge_skill_handler_invocation_t *ptr) {
    skill_string_free(&ptr->tenant);
    skill_string_free(&ptr->skill);
    skill_string_free(&ptr->version);
    skill_string_free(&ptr->request_id);
}
