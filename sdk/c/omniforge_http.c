/* omniforge_http.c: blocking outbound HTTP over the wasi:http bindings: the request is sent
 * first and its body streamed after (a large body written first would fill the host's buffer
 * with no request to drain it), then the whole response is read. */
#include "omniforge.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_BODY_BYTES ((size_t)16 << 20)
/* `blocking-write-and-flush` takes at most 4096 bytes at a time. */
#define WRITE_CHUNK 4096

static of_buf http_message;

static of_http_status failed(of_http_status status, const char *format, ...) OF_PRINTF(2, 3);

static of_http_status failed(of_http_status status, const char *format, ...) {
    of_buf_free(&http_message);
    va_list args;
    va_start(args, format);
    of_buf_vprintf(&http_message, format, args);
    va_end(args);
    return status;
}

const char *of_http_last_message(void) { return of_buf_cstr(&http_message); }

/* The WIT names of wasi:http's error-code cases, by tag. */
static const char *const ERROR_CODES[] = {
    "DNS-timeout", "DNS-error", "destination-not-found", "destination-unavailable",
    "destination-IP-prohibited", "destination-IP-unroutable", "connection-refused",
    "connection-terminated", "connection-timeout", "connection-read-timeout",
    "connection-write-timeout", "connection-limit-reached", "TLS-protocol-error",
    "TLS-certificate-error", "TLS-alert-received", "HTTP-request-denied",
    "HTTP-request-length-required", "HTTP-request-body-size", "HTTP-request-method-invalid",
    "HTTP-request-URI-invalid", "HTTP-request-URI-too-long", "HTTP-request-header-section-size",
    "HTTP-request-header-size", "HTTP-request-trailer-section-size",
    "HTTP-request-trailer-size", "HTTP-response-incomplete",
    "HTTP-response-header-section-size", "HTTP-response-header-size",
    "HTTP-response-body-size", "HTTP-response-trailer-section-size",
    "HTTP-response-trailer-size", "HTTP-response-transfer-coding",
    "HTTP-response-content-coding", "HTTP-response-timeout", "HTTP-upgrade-failed",
    "HTTP-protocol-error", "loop-detected", "configuration-error", "internal-error",
};

/* Records why the host's error code failed the request, frees it and says which status. */
static of_http_status from_error_code(wasi_http_types_error_code_t *code) {
    uint8_t tag = code->tag;
    wasi_http_types_error_code_free(code);
    switch (tag) {
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED:
        return failed(OF_HTTP_DENIED, "the host refused this destination (not in the allow-list)");
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_PROHIBITED:
        return failed(OF_HTTP_DENIED, "the destination address is not allowed");
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_URI_INVALID:
        return failed(OF_HTTP_INVALID_REQUEST, "the URL is invalid");
    default:
        return failed(OF_HTTP_UNAVAILABLE, "%s",
                      tag < sizeof ERROR_CODES / sizeof *ERROR_CODES ? ERROR_CODES[tag] : "error");
    }
}

/* Describes a stream error and drops its error resource. */
static void stream_error_text(wasi_io_streams_stream_error_t *err, of_buf *out) {
    if (err->tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
        of_buf_puts(out, "the stream is closed");
        return;
    }
    skill_string_t debug;
    wasi_io_error_method_error_to_debug_string(
        wasi_io_error_borrow_error(err->val.last_operation_failed), &debug);
    of_buf_append(out, debug.ptr, debug.len);
    skill_string_free(&debug);
    /* The bindings' free functions never drop handles: the error resource goes here. */
    wasi_io_error_error_drop_own(err->val.last_operation_failed);
}

/* The parts of an absolute URL that wasi:http takes separately. A full URL parser would be
 * more code in every skill for what the host checks again anyway. */
typedef struct target {
    bool https;
    of_str authority;
    /* Path and query, starting with '/'; owned. */
    of_buf path;
} target;

static of_http_status parse_url(const char *url, target *t) {
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return failed(OF_HTTP_INVALID_REQUEST, "not an absolute URL: %s", url);
    size_t scheme_len = (size_t)(sep - url);
    if (scheme_len == 4 && strncasecmp(url, "http", 4) == 0)
        t->https = false;
    else if (scheme_len == 5 && strncasecmp(url, "https", 5) == 0)
        t->https = true;
    else
        return failed(OF_HTTP_INVALID_REQUEST, "only http and https URLs are supported: %s", url);
    const char *rest = sep + 3;
    /* The fragment is never sent. */
    size_t rest_len = strcspn(rest, "#");
    size_t authority_len = strcspn(rest, "/?#");
    t->authority = (of_str){rest, authority_len};
    if (authority_len == 0 || memchr(rest, '@', authority_len) != NULL)
        return failed(OF_HTTP_INVALID_REQUEST, "the URL needs a host (and no user info): %s", url);
    /* `http://h` and `http://h?q` ask for `/` and `/?q`. */
    if (authority_len == rest_len || rest[authority_len] != '/')
        of_buf_append(&t->path, "/", 1);
    of_buf_append(&t->path, rest + authority_len, rest_len - authority_len);
    if (t->path.failed)
        return failed(OF_HTTP_INVALID_REQUEST, "out of memory");
    return OF_HTTP_OK;
}

static wasi_http_types_method_t method_of(const char *name) {
    static const char *const known[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                        "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    wasi_http_types_method_t method = {0};
    for (uint8_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(name, known[i]) == 0) {
            method.tag = i;
            return method;
        }
    method.tag = WASI_HTTP_TYPES_METHOD_OTHER;
    method.val.other = (skill_string_t){(uint8_t *)name, strlen(name)};
    return method;
}

/* Builds the outgoing request (headers, method, scheme, authority, path). */
static of_http_status new_request(const of_http_request *request, target *t,
                                  wasi_http_types_own_outgoing_request_t *out) {
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    for (size_t i = 0; i < request->header_count; i++) {
        const of_header *h = &request->headers[i];
        wasi_http_types_field_name_t name = {(uint8_t *)h->name, strlen(h->name)};
        wasi_http_types_field_value_t value = {(uint8_t *)h->value, strlen(h->value)};
        wasi_http_types_header_error_t err;
        if (!wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name,
                                                  &value, &err)) {
            wasi_http_types_fields_drop_own(headers);
            return failed(OF_HTTP_INVALID_REQUEST, "header %s cannot be sent", h->name);
        }
    }
    wasi_http_types_own_outgoing_request_t req =
        wasi_http_types_constructor_outgoing_request(headers);
    wasi_http_types_borrow_outgoing_request_t borrowed =
        wasi_http_types_borrow_outgoing_request(req);
    wasi_http_types_method_t method = method_of(request->method ? request->method : "GET");
    wasi_http_types_scheme_t scheme = {
        .tag = t->https ? WASI_HTTP_TYPES_SCHEME_HTTPS : WASI_HTTP_TYPES_SCHEME_HTTP};
    skill_string_t authority = {(uint8_t *)t->authority.ptr, t->authority.len};
    skill_string_t path = {(uint8_t *)t->path.ptr, t->path.len};
    const char *bad = NULL;
    if (!wasi_http_types_method_outgoing_request_set_method(borrowed, &method))
        bad = "method";
    else if (!wasi_http_types_method_outgoing_request_set_scheme(borrowed, &scheme))
        bad = "scheme";
    else if (!wasi_http_types_method_outgoing_request_set_authority(borrowed, &authority))
        bad = "host";
    else if (!wasi_http_types_method_outgoing_request_set_path_with_query(borrowed, &path))
        bad = "path";
    if (bad != NULL) {
        wasi_http_types_outgoing_request_drop_own(req);
        return failed(OF_HTTP_INVALID_REQUEST, "the %s cannot be sent", bad);
    }
    *out = req;
    return OF_HTTP_OK;
}

/* Streams the body and finishes it; on failure records why in `why`. */
static bool write_body(wasi_http_types_own_outgoing_body_t body, const uint8_t *bytes,
                       size_t len, of_buf *why) {
    wasi_http_types_own_output_stream_t stream;
    if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body),
                                                    &stream)) {
        wasi_http_types_outgoing_body_drop_own(body);
        of_buf_puts(why, "the body stream was already taken");
        return false;
    }
    bool written = true;
    for (size_t at = 0; at < len && written; at += WRITE_CHUNK) {
        size_t n = len - at < WRITE_CHUNK ? len - at : WRITE_CHUNK;
        skill_list_u8_t chunk = {(uint8_t *)bytes + at, n};
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(
                wasi_io_streams_borrow_output_stream(stream), &chunk, &err)) {
            of_buf_puts(why, "sending the body: ");
            stream_error_text(&err, why);
            written = false;
        }
    }
    /* The stream is the body's child: it goes first. */
    wasi_io_streams_output_stream_drop_own(stream);
    if (!written) {
        wasi_http_types_outgoing_body_drop_own(body);
        return false;
    }
    wasi_http_types_error_code_t code;
    if (!wasi_http_types_static_outgoing_body_finish(body, NULL, &code)) {
        of_http_status status = from_error_code(&code);
        (void)status;
        of_buf_printf(why, "finishing the body: %s", of_http_last_message());
        return false;
    }
    return true;
}

/* A NUL-terminated copy of `len` bytes (ptr NULL when out of memory). */
static of_str copy_str(const uint8_t *bytes, size_t len) {
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return (of_str){NULL, 0};
    memcpy(copy, bytes, len);
    copy[len] = '\0';
    return (of_str){copy, len};
}

/* Reads the response's headers and whole body into `out`. */
static of_http_status read_response(wasi_http_types_own_incoming_response_t response,
                                    size_t limit, of_http_response *out) {
    wasi_http_types_borrow_incoming_response_t borrowed =
        wasi_http_types_borrow_incoming_response(response);
    out->status = wasi_http_types_method_incoming_response_status(borrowed);

    wasi_http_types_own_headers_t headers =
        wasi_http_types_method_incoming_response_headers(borrowed);
    wasi_http_types_list_tuple2_field_name_field_value_t entries;
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(headers), &entries);
    wasi_http_types_fields_drop_own(headers);
    out->headers = calloc(entries.len ? entries.len : 1, sizeof *out->headers);
    if (out->headers == NULL) {
        wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
        return failed(OF_HTTP_UNAVAILABLE, "out of memory");
    }
    for (size_t i = 0; i < entries.len; i++) {
        of_http_header *h = &out->headers[out->header_count++];
        h->name = copy_str(entries.ptr[i].f0.ptr, entries.ptr[i].f0.len);
        h->value = copy_str(entries.ptr[i].f1.ptr, entries.ptr[i].f1.len);
        if (h->name.ptr == NULL || h->value.ptr == NULL) {
            wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
            return failed(OF_HTTP_UNAVAILABLE, "out of memory");
        }
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);

    wasi_http_types_own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_response_consume(borrowed, &body))
        return failed(OF_HTTP_UNAVAILABLE, "the body was already taken");
    wasi_http_types_own_input_stream_t stream;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                     &stream)) {
        wasi_http_types_incoming_body_drop_own(body);
        return failed(OF_HTTP_UNAVAILABLE, "the body stream was already taken");
    }
    of_buf bytes = {0};
    of_http_status status = OF_HTTP_OK;
    for (;;) {
        skill_list_u8_t chunk;
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_input_stream_blocking_read(
                wasi_io_streams_borrow_input_stream(stream), 64 * 1024, &chunk, &err)) {
            if (err.tag != WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
                of_buf why = {0};
                stream_error_text(&err, &why);
                status = failed(OF_HTTP_UNAVAILABLE, "reading the body: %s", of_buf_cstr(&why));
                of_buf_free(&why);
            }
            break;
        }
        bool over = chunk.len > limit - bytes.len;
        if (!over)
            of_buf_append(&bytes, chunk.ptr, chunk.len);
        skill_list_u8_free(&chunk);
        if (over) {
            status = failed(OF_HTTP_TOO_LARGE, "the response body is over %zu bytes", limit);
            break;
        }
        if (bytes.failed) {
            status = failed(OF_HTTP_UNAVAILABLE, "out of memory for the response body");
            break;
        }
    }
    wasi_io_streams_input_stream_drop_own(stream);
    wasi_http_types_incoming_body_drop_own(body);
    if (status != OF_HTTP_OK) {
        of_buf_free(&bytes);
        return status;
    }
    if (bytes.ptr == NULL)
        of_buf_append(&bytes, "", 0);
    out->body = bytes.ptr;
    out->body_len = bytes.len;
    return bytes.failed ? failed(OF_HTTP_UNAVAILABLE, "out of memory") : OF_HTTP_OK;
}

of_http_status of_http_send(const of_http_request *request, of_http_response *response) {
    *response = (of_http_response){0};
    if (request->url == NULL)
        return failed(OF_HTTP_INVALID_REQUEST, "no URL");
    target t = {0};
    of_http_status status = parse_url(request->url, &t);
    wasi_http_types_own_outgoing_request_t req;
    if (status == OF_HTTP_OK)
        status = new_request(request, &t, &req);
    of_buf_free(&t.path);
    if (status != OF_HTTP_OK)
        return status;

    wasi_http_types_own_outgoing_body_t body;
    if (!wasi_http_types_method_outgoing_request_body(wasi_http_types_borrow_outgoing_request(req),
                                                      &body)) {
        wasi_http_types_outgoing_request_drop_own(req);
        return failed(OF_HTTP_INVALID_REQUEST, "the body was already taken");
    }
    wasi_http_outgoing_handler_own_future_incoming_response_t pending;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(req, NULL, &pending, &code)) {
        wasi_http_types_outgoing_body_drop_own(body);
        return from_error_code(&code);
    }
    /* A server may answer before reading the whole body and close the connection: then the
     * write fails but the answer is still the response, so a write error counts only when
     * there is no response. */
    of_buf write_error = {0};
    bool sent = write_body(body, request->body, request->body ? request->body_len : 0,
                           &write_error);

    wasi_http_types_borrow_future_incoming_response_t future =
        wasi_http_types_borrow_future_incoming_response(pending);
    wasi_http_types_own_pollable_t ready =
        wasi_http_types_method_future_incoming_response_subscribe(future);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    bool some = wasi_http_types_method_future_incoming_response_get(future, &got);
    wasi_http_types_future_incoming_response_drop_own(pending);
    if (!some || got.is_err) {
        of_buf_free(&write_error);
        return failed(OF_HTTP_UNAVAILABLE, "no response after waiting for it");
    }
    if (got.val.ok.is_err) {
        status = from_error_code(&got.val.ok.val.err);
        if (!sent && status != OF_HTTP_DENIED)
            status = failed(OF_HTTP_UNAVAILABLE, "%s", of_buf_cstr(&write_error));
        of_buf_free(&write_error);
        return status;
    }
    of_buf_free(&write_error);
    wasi_http_types_own_incoming_response_t incoming = got.val.ok.val.ok;
    size_t limit = request->max_body_bytes ? request->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    status = read_response(incoming, limit, response);
    wasi_http_types_incoming_response_drop_own(incoming);
    if (status != OF_HTTP_OK)
        of_http_response_free(response);
    return status;
}

const char *of_http_header_value(const of_http_response *response, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < response->header_count; i++) {
        of_str h = response->headers[i].name;
        if (h.len != n)
            continue;
        size_t j = 0;
        while (j < n && tolower((unsigned char)h.ptr[j]) == tolower((unsigned char)name[j]))
            j++;
        if (j == n)
            return response->headers[i].value.ptr ? response->headers[i].value.ptr : "";
    }
    return NULL;
}

void of_http_response_free(of_http_response *response) {
    for (size_t i = 0; i < response->header_count; i++) {
        free((void *)response->headers[i].name.ptr);
        free((void *)response->headers[i].value.ptr);
    }
    free(response->headers);
    free(response->body);
    *response = (of_http_response){0};
}

of_result of_http_error(of_http_status status, const char *operation) {
    const char *message = of_http_last_message();
    switch (status) {
    case OF_HTTP_DENIED:
        return of_error(OF_DENIED, "%s: %s", operation, message);
    case OF_HTTP_UNAVAILABLE:
        return of_error(OF_UNAVAILABLE, "%s: %s", operation, message);
    case OF_HTTP_INVALID_REQUEST:
        return of_error(OF_FAILED, "%s: invalid request: %s", operation, message);
    case OF_HTTP_TOO_LARGE:
        return of_error(OF_FAILED, "%s: %s", operation, message);
    default:
        return of_error(OF_FAILED, "%s failed", operation);
    }
}
