/* examples/hello-c: greets someone by name. */
#include <ctype.h>
#include <string.h>

#include "omniforge.h"

static of_result greet(const of_context *ctx, const of_value *input) {
    /* `input` is the caller's JSON, already checked against the input schema in
     * omniforge.toml; what the skill returns must match the output schema. */
    const char *name = of_get_string(input, "name");
    while (name != NULL && isspace((unsigned char)*name))
        name++;
    if (name == NULL || *name == '\0')
        return of_error(OF_INVALID_INPUT, "name must not be blank");
    size_t len = strlen(name);
    while (len > 0 && isspace((unsigned char)name[len - 1]))
        len--;
    of_log(OF_INFO, "greeting %.*s (request %.*s)", (int)len, name, (int)ctx->request_id.len,
           ctx->request_id.ptr);

    of_json_writer out = {0};
    of_json_begin_object(&out);
    of_json_key(&out, "greeting");
    of_json_stringf(&out, "Hello, %.*s!", (int)len, name);
    of_json_end_object(&out);
    return of_ok_json(&out);
}

OF_SKILL(greet)
