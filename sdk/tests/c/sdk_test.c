/* Unit tests of the C SDK's insides, run natively under AddressSanitizer and UBSan by
 * `cargo test -p omniforge` (host/cli/src/author/c.rs): the JSON parser and writer, exact
 * integers, UTF-8, the key-value and skill-call wrappers' ownership and the handler export. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omniforge.h"

static int failures;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

/* Parses `in` and writes it back: the text, or "ERR: reason". Caller frees. */
static char *round_trip(const char *in, size_t len) {
    of_buf err = {0};
    of_value *v = of_parse(in, len, &err);
    of_buf out = {0};
    if (v == NULL) {
        of_buf_printf(&out, "ERR: %s", of_buf_cstr(&err));
    } else {
        of_json_writer w = {0};
        of_json_value(&w, v);
        of_buf_puts(&out, of_json_text(&w) ? of_json_text(&w) : "(writer failed)");
        of_json_writer_free(&w);
        of_value_free(v);
    }
    of_buf_free(&err);
    return out.ptr;
}

static void expect(const char *in, const char *want) {
    char *got = round_trip(in, strlen(in));
    bool same = strncmp(got, want, strlen(want)) == 0;
    if (!same)
        printf("FAILED %s: got %s, want %s\n", in, got, want);
    failures += !same;
    free(got);
}

static void parsing(void) {
    expect("{}", "{}");
    expect(" [ true , false , null ] ", "[true,false,null]");
    expect("-0.5e+3", "-0.5e+3");
    expect("{\"a\":[1,2,{\"b\":null}],\"c\":\"x\\u00e9\\ud83d\\ude00\\n\\\"\\/\"}",
           "{\"a\":[1,2,{\"b\":null}],\"c\":\"x\xc3\xa9\xf0\x9f\x98\x80\\n\\\"/\"}");
    expect("\"a\\u0000b\"", "\"a\\u0000b\"");
    expect("{\"k\":1,\"k\":2}", "{\"k\":1,\"k\":2}");
    expect("[1,]", "ERR: invalid number");
    expect("{\"a\":1,}", "ERR: expected a string key");
    expect("{\"a\" 1}", "ERR: expected ':'");
    expect("01", "ERR: trailing characters");
    expect("1.", "ERR: invalid number");
    expect("\"\\x\"", "ERR: invalid escape");
    expect("\"abc", "ERR: unterminated string");
    expect("\"\\ud800\"", "ERR: unpaired surrogate");
    expect("\"\\udc00\"", "ERR: unpaired surrogate");
    expect("\"tab\there\"", "ERR: control character");
    expect("tru", "ERR: unexpected character");
    expect("1e400", "ERR: number out of range");
    expect("\"\xff\"", "ERR: invalid UTF-8");
    expect("\"\xc0\xaf\"", "ERR: invalid UTF-8");     /* overlong '/' */
    expect("\"\xed\xa0\x80\"", "ERR: invalid UTF-8"); /* a surrogate */
    expect("\"\xf4\x90\x80\x80\"", "ERR: invalid UTF-8"); /* above U+10FFFF */
    expect("", "ERR: unexpected end");

    char deep[300];
    memset(deep, '[', 128);
    memset(deep + 128, ']', 128);
    /* As deep as the parser goes, the writer follows. */
    char *nested = round_trip(deep, 256);
    CHECK(strncmp(nested, deep, 256) == 0);
    free(nested);
    memset(deep, '[', 129);
    memset(deep + 129, ']', 129);
    char *refused = round_trip(deep, 258);
    CHECK(strstr(refused, "nesting too deep") != NULL);
    free(refused);

    /* Input need not be NUL-terminated. */
    char *cut = round_trip("[12]xyz", 4);
    CHECK(strcmp(cut, "[12]") == 0);
    free(cut);
}

static bool int_of(const char *literal, int64_t *n) {
    of_value *v = of_parse(literal, strlen(literal), NULL);
    bool ok = of_int(v, n);
    of_value_free(v);
    return ok;
}

static void integers(void) {
    static const struct {
        const char *literal;
        bool ok;
        int64_t value;
    } cases[] = {
        {"0", true, 0},
        {"-0.0", true, 0},
        {"2.0", true, 2},
        {"3e2", true, 300},
        {"12.5e1", true, 125},
        {"1230e-1", true, 123},
        {"9007199254740993.0", true, 9007199254740993LL},
        {"9223372036854775807.0", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"10000000000000000000000e-4", true, 1000000000000000000LL},
        {"1.5", false, 0},
        {"0.05", false, 0},
        {"125e-1", false, 0},
        {"1e-400", false, 0},
        {"1.0000000000000001", false, 0},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"1e19", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t n = 42;
        bool ok = int_of(cases[i].literal, &n);
        if (ok != cases[i].ok || (ok && n != cases[i].value) || (!ok && n != 42)) {
            printf("FAILED of_int(%s) = %d %lld\n", cases[i].literal, ok, (long long)n);
            failures++;
        }
    }
    double d = 0;
    of_value *s = of_parse("\"7\"", 3, NULL);
    int64_t i = 0;
    CHECK(!of_number(s, &d) && !of_int(s, &i) && of_len(s) == 1);
    of_value_free(s);
}

static void reading(void) {
    const char *doc = "{\"user\":{\"name\":\"Ada\",\"tags\":[\"x\",\"y\"]},\"n\":null,\"t\":true}";
    of_value *v = of_parse(doc, strlen(doc), NULL);
    CHECK(v != NULL);
    CHECK(strcmp(of_get_string(of_get(v, "user"), "name"), "Ada") == 0);
    CHECK(of_get_string(of_get(v, "missing"), "name") == NULL);
    CHECK(of_len(of_get(of_get(v, "user"), "tags")) == 2);
    CHECK(strcmp(of_string(of_at(of_get(of_get(v, "user"), "tags"), 1)), "y") == 0);
    CHECK(of_at(of_get(of_get(v, "user"), "tags"), 2) == NULL);
    CHECK(of_is_null(of_get(v, "n")) && !of_is_null(of_get(v, "missing")));
    CHECK(of_type_of(of_get(v, "missing")) == OF_NULL);
    bool t = false;
    CHECK(of_bool(of_get(v, "t"), &t) && t);
    CHECK(of_len(v) == 3 && strcmp(of_key_at(v, 2).ptr, "t") == 0);
    CHECK(of_type_of(of_value_at(v, 0)) == OF_OBJECT);
    of_value_free(v);
}

static const char *written(of_json_writer *w) {
    const char *text = of_json_text(w);
    return text ? text : "(failed)";
}

static void writing(void) {
    of_json_writer w = {0};
    of_json_begin_object(&w);
    of_json_key(&w, "a");
    of_json_double(&w, 0.1);
    of_json_key(&w, "b\"");
    of_json_begin_array(&w);
    of_json_int(&w, -5);
    of_json_stringf(&w, "x%d\t\x01", 3);
    of_json_double(&w, 1e21);
    of_json_begin_object(&w);
    of_json_end_object(&w);
    of_json_end_array(&w);
    of_json_end_object(&w);
    CHECK(strcmp(written(&w), "{\"a\":0.1,\"b\\\"\":[-5,\"x3\\t\\u0001\",1e+21,{}]}") == 0);
    of_result r = of_ok_json(&w);
    CHECK(r.ok && r.len == strlen(r.text));
    free(r.text);

    /* Misuse fails the writer instead of producing invalid JSON: a value where a key
     * belongs, two top-level values, unbalanced ends, a key without a value, NaN, bytes
     * that are not UTF-8, nesting past OF_JSON_MAX_DEPTH. */
    of_json_writer m = {0};
    of_json_begin_object(&m);
    of_json_int(&m, 1);
    of_json_end_object(&m);
    CHECK(of_json_text(&m) == NULL);
    of_json_writer_free(&m);

    of_json_writer two = {0};
    of_json_int(&two, 1);
    of_json_int(&two, 2);
    CHECK(of_json_text(&two) == NULL);
    of_json_writer_free(&two);

    of_json_writer open = {0};
    of_json_begin_array(&open);
    CHECK(of_json_text(&open) == NULL);
    of_result unfinished = of_ok_json(&open);
    CHECK(!unfinished.ok && unfinished.kind == OF_FAILED);
    free(unfinished.text);

    of_json_writer dangling = {0};
    of_json_begin_object(&dangling);
    of_json_key(&dangling, "k");
    of_json_end_object(&dangling);
    CHECK(of_json_text(&dangling) == NULL);
    of_json_writer_free(&dangling);

    of_json_writer nan = {0};
    of_json_double(&nan, 0.0 / 0.0);
    CHECK(of_json_text(&nan) == NULL);
    of_json_writer_free(&nan);

    of_json_writer bytes = {0};
    of_json_string(&bytes, "\xff");
    CHECK(of_json_text(&bytes) == NULL);
    of_json_writer_free(&bytes);

    of_json_writer deep = {0};
    for (int i = 0; i < OF_JSON_MAX_DEPTH; i++)
        of_json_begin_array(&deep);
    CHECK(!deep.failed);
    of_json_begin_array(&deep);
    CHECK(deep.failed);
    of_json_writer_free(&deep);
}

static void key_value(void) {
    of_bytes value;
    bool found;
    CHECK(of_kv_get("empty", &value, &found) == OF_KV_OK && found && value.len == 0);
    of_bytes_free(&value); /* the host's pointer for an empty list is not freed */
    CHECK(of_kv_get("full", &value, &found) == OF_KV_OK && found && value.len == 6);
    of_bytes_free(&value);
    CHECK(of_kv_get("absent", &value, &found) == OF_KV_OK && !found);
    of_keys keys;
    CHECK(of_kv_list_keys("none", 10, &keys) == OF_KV_OK && keys.len == 0);
    of_keys_free(&keys);
    CHECK(of_kv_list_keys("", 10, &keys) == OF_KV_OK && keys.len == 2);
    CHECK(keys.items[0].len == 1 && keys.items[1].len == 0);
    of_keys_free(&keys);

    CHECK(of_kv_set("too-large", "x", 1) == OF_KV_TOO_LARGE);
    CHECK(strcmp(of_kv_last_message(), "values are limited to 1 MiB") == 0);
    of_result r = of_kv_error(OF_KV_TOO_LARGE, "saving");
    CHECK(!r.ok && r.kind == OF_FAILED && strstr(r.text, "1 MiB") != NULL);
    free(r.text);
    CHECK(of_kv_delete("k") == OF_KV_DENIED && strcmp(of_kv_last_message(), "") == 0);
    r = of_kv_error(OF_KV_DENIED, "deleting");
    CHECK(r.kind == OF_DENIED);
    free(r.text);
    int64_t n;
    CHECK(of_kv_increment("k", 1, &n) == OF_KV_NOT_A_COUNTER);
}

static void skill_calls(void) {
    of_result r = of_skills_invoke("acme/echo", NULL, "{\"a\":[1]}");
    CHECK(r.ok && r.len == 9 && strcmp(r.text, "{\"a\":[1]}") == 0);
    free(r.text);
    r = of_skills_invoke("acme/version", "^1.2", "null");
    CHECK(r.ok && strcmp(r.text, "\"^1.2\"") == 0);
    free(r.text);
    r = of_skills_invoke("acme/version", NULL, "null");
    CHECK(r.ok && strcmp(r.text, "\"\"") == 0);
    free(r.text);
    r = of_skills_invoke("acme/empty", "", "{}"); /* the host's pointer is not freed */
    CHECK(r.ok && r.len == 0 && strcmp(r.text, "") == 0);
    free(r.text);
    r = of_skills_invoke("acme/missing", "", "{}");
    CHECK(!r.ok && r.kind == OF_NOT_FOUND && strcmp(r.text, "no skill named that") == 0);
    free(r.text);
    r = of_skills_invoke("acme/denied", "", "{}");
    CHECK(!r.ok && r.kind == OF_DENIED && r.len == 0 && strcmp(r.text, "") == 0);
    free(r.text);
    r = of_skills_invoke("acme/echo", "", NULL);
    CHECK(!r.ok && r.kind == OF_FAILED && strstr(r.text, "no input") != NULL);
    free(r.text);
    r = of_skills_invoke("acme/echo", "", "\"\xff\"");
    CHECK(!r.ok && r.kind == OF_FAILED && strstr(r.text, "not UTF-8") != NULL);
    free(r.text);
}

static void secrets(void) {
    of_result r = of_secret_get("api-token");
    CHECK(r.ok && r.len == 7 && strcmp(r.text, "s3cr\xc3\xa9t") == 0);
    free(r.text);
    r = of_secret_get("undeclared");
    CHECK(!r.ok && r.kind == OF_DENIED && strstr(r.text, "not declared") != NULL);
    free(r.text);
    r = of_secret_get("db-password");
    CHECK(!r.ok && r.kind == OF_NOT_FOUND);
    free(r.text);
    r = of_secret_get(NULL);
    CHECK(!r.ok && r.kind == OF_FAILED);
    free(r.text);
    r = of_secret_get("\xff");
    CHECK(!r.ok && r.kind == OF_FAILED && strstr(r.text, "not UTF-8") != NULL);
    free(r.text);
}

/* The handler behind the export: echoes its input, or fails on request. */
static of_result echo(const of_context *ctx, const of_value *input) {
    if (of_get_string(input, "fail"))
        return of_error(OF_NOT_FOUND, "%s \xff", of_get_string(input, "fail"));
    if (of_get(input, "bad-output"))
        return of_ok("\"\xff\"");
    of_json_writer w = {0};
    of_json_begin_object(&w);
    of_json_key(&w, "skill");
    of_json_string_n(&w, ctx->skill.ptr, ctx->skill.len);
    of_json_key(&w, "input");
    of_json_value(&w, input);
    of_json_end_object(&w);
    return of_ok_json(&w);
}

OF_SKILL(echo)

static skill_string_t owned(const char *text) {
    skill_string_t s;
    s.len = strlen(text);
    s.ptr = s.len ? malloc(s.len) : (uint8_t *)1;
    memcpy(s.ptr, text, s.len);
    return s;
}

/* Calls the export the way the bindings do: arguments owned by the callee, results freed
 * after. Returns the output or "error <tag>: <message>". */
static char *invoke(const char *input) {
    exports_omniforge_skill_handler_invocation_t ctx = {
        owned("acme"), owned("acme/echo"), owned("1.0.0"), owned(""), 0};
    skill_string_t in = owned(input);
    skill_string_t ret;
    exports_omniforge_skill_handler_skill_error_t err;
    of_buf out = {0};
    if (exports_omniforge_skill_handler_invoke(&ctx, &in, &ret, &err)) {
        of_buf_append(&out, ret.ptr, ret.len);
        free(ret.ptr);
    } else {
        of_buf_printf(&out, "error %d: %.*s", err.tag, (int)err.val.failed.len,
                      (const char *)err.val.failed.ptr);
        free(err.val.failed.ptr);
    }
    return out.ptr;
}

static void handler_export(void) {
    char *out = invoke("{\"b\":[1,2.5],\"a\":\"\"}");
    CHECK(strcmp(out, "{\"skill\":\"acme/echo\",\"input\":{\"b\":[1,2.5],\"a\":\"\"}}") == 0);
    free(out);
    out = invoke("{\"fail\":\"no such thing\"}");
    CHECK(strcmp(out, "error 2: no such thing ?") == 0); /* invalid UTF-8 made '?' */
    free(out);
    out = invoke("{\"bad-output\":1}");
    CHECK(strstr(out, "error 4: the skill's output is not valid UTF-8") == out);
    free(out);
    out = invoke("not json");
    CHECK(strstr(out, "error 0: the input is not JSON") == out);
    free(out);
}

void stub_task(const char *id, uint32_t attempt);

static void task_context(void) {
    of_buf id = {0};
    CHECK(!of_task_id(&id) && id.len == 0);
    CHECK(of_attempt() == 1);
    stub_task("tsk_0193", 2);
    CHECK(of_task_id(&id) && strcmp(of_buf_cstr(&id), "tsk_0193") == 0);
    CHECK(of_attempt() == 2);
    of_buf_free(&id);
    stub_task(NULL, 1);
}

int main(void) {
    parsing();
    integers();
    reading();
    writing();
    key_value();
    skill_calls();
    secrets();
    handler_export();
    task_context();
    printf("%s (%d failed)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
