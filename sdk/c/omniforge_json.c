/* omniforge_json.c: JSON for C skills: a strict parser into a value tree, and a writer that
 * keeps the commas, colons and escapes right. */
#include "omniforge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting deeper than this is refused: it bounds the parser's recursion on the guest's
 * stack (serde_json, on the host, stops at the same depth). */
#define MAX_DEPTH OF_JSON_MAX_DEPTH

struct of_value {
    of_type type;
    /* Bytes of a string, elements of an array, members of an object. */
    size_t len;
    union {
        bool boolean;
        /* The literal is kept so that integers read back exactly. */
        struct {
            double value;
            char *text;
        } number;
        /* NUL-terminated; may also hold NULs (len counts them). */
        char *string;
        /* Array elements, or object member values (keys in `keys`). */
        of_value *items;
    } as;
    of_str *keys;
};

/* ---- parsing ------------------------------------------------------------------------------ */

typedef struct parser {
    const char *at;
    const char *start;
    const char *end;
    int depth;
    of_buf *error;
} parser;

static bool fail(parser *p, const char *what) {
    if (p->error && p->error->len == 0)
        of_buf_printf(p->error, "%s at byte %zu", what, (size_t)(p->at - p->start));
    return false;
}

static void skip_space(parser *p) {
    while (p->at < p->end && (*p->at == ' ' || *p->at == '\t' || *p->at == '\n' || *p->at == '\r'))
        p->at++;
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(p->end - p->at) < n || memcmp(p->at, word, n) != 0)
        return fail(p, "unexpected character");
    p->at += n;
    return true;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, unsigned *out) {
    if (p->end - p->at < 4)
        return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->at[i]);
        if (d < 0)
            return fail(p, "invalid \\u escape");
        v = v * 16 + (unsigned)d;
    }
    p->at += 4;
    *out = v;
    return true;
}

static void put_utf8(of_buf *out, unsigned cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    of_buf_append(out, b, n);
}

/* A string literal (the opening quote is next), decoded into `out`. */
static bool parse_string(parser *p, of_buf *out) {
    p->at++;
    for (;;) {
        const char *run = p->at;
        while (p->at < p->end && *p->at != '"' && *p->at != '\\' && (unsigned char)*p->at >= 0x20) {
            size_t n = of_utf8_sequence(p->at, (size_t)(p->end - p->at));
            if (n == 0)
                return fail(p, "invalid UTF-8 in string");
            p->at += n;
        }
        of_buf_append(out, run, (size_t)(p->at - run));
        if (p->at >= p->end)
            return fail(p, "unterminated string");
        char c = *p->at++;
        if (c == '"')
            break;
        if (c != '\\') {
            p->at--;
            return fail(p, "control character in string");
        }
        if (p->at >= p->end)
            return fail(p, "unterminated string");
        char e = *p->at++;
        static const char escapes[] = "\"\\/bfnrt";
        static const char decoded[] = "\"\\/\b\f\n\r\t";
        const char *simple = e != '\0' ? strchr(escapes, e) : NULL;
        if (simple != NULL) {
            of_buf_append(out, &decoded[simple - escapes], 1);
            continue;
        }
        if (e != 'u')
            return fail(p, "invalid escape");
        unsigned cp;
        if (!read_hex4(p, &cp))
            return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low;
            if (p->end - p->at < 2 || p->at[0] != '\\' || p->at[1] != 'u')
                return fail(p, "unpaired surrogate");
            p->at += 2;
            if (!read_hex4(p, &low))
                return false;
            if (low < 0xDC00 || low > 0xDFFF)
                return fail(p, "unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail(p, "unpaired surrogate");
        }
        put_utf8(out, cp);
    }
    if (out->failed)
        return fail(p, "out of memory");
    /* An empty string still gets its own NUL-terminated allocation. */
    of_buf_append(out, "", 0);
    return !out->failed || fail(p, "out of memory");
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A number by JSON's grammar (no leading zeros, no '+', no bare '.'). */
static bool parse_number(parser *p, of_value *out) {
    const char *first = p->at;
    if (p->at < p->end && *p->at == '-')
        p->at++;
    if (p->at >= p->end || !is_digit(*p->at))
        return fail(p, "invalid number");
    if (*p->at == '0')
        p->at++;
    else
        while (p->at < p->end && is_digit(*p->at))
            p->at++;
    if (p->at < p->end && *p->at == '.') {
        p->at++;
        if (p->at >= p->end || !is_digit(*p->at))
            return fail(p, "invalid number");
        while (p->at < p->end && is_digit(*p->at))
            p->at++;
    }
    if (p->at < p->end && (*p->at == 'e' || *p->at == 'E')) {
        p->at++;
        if (p->at < p->end && (*p->at == '+' || *p->at == '-'))
            p->at++;
        if (p->at >= p->end || !is_digit(*p->at))
            return fail(p, "invalid number");
        while (p->at < p->end && is_digit(*p->at))
            p->at++;
    }
    size_t n = (size_t)(p->at - first);
    char *text = malloc(n + 1);
    if (text == NULL)
        return fail(p, "out of memory");
    memcpy(text, first, n);
    text[n] = '\0';
    out->type = OF_NUMBER;
    out->as.number.text = text;
    out->as.number.value = strtod(text, NULL);
    /* 1e400: a double cannot hold it, and the host's JSON would refuse it. */
    if (!isfinite(out->as.number.value))
        return fail(p, "number out of range");
    return true;
}

static bool parse_value(parser *p, of_value *out);

/* Appends a zeroed slot to a growing array of `size`-byte items. */
static void *grow(void **items, size_t len, size_t *cap, size_t size) {
    if (len == *cap) {
        size_t next = *cap ? *cap * 2 : 4;
        void *bigger = realloc(*items, next * size);
        if (bigger == NULL)
            return NULL;
        *items = bigger;
        *cap = next;
    }
    char *slot = (char *)*items + len * size;
    memset(slot, 0, size);
    return slot;
}

/* An array or object (the opening bracket is next); `out` owns what is parsed so far even
 * when this fails, so of_value_free releases it. */
static bool parse_container(parser *p, of_value *out, bool object) {
    if (++p->depth > MAX_DEPTH)
        return fail(p, "nesting too deep");
    p->at++;
    out->type = object ? OF_OBJECT : OF_ARRAY;
    char close = object ? '}' : ']';
    size_t cap = 0, key_cap = 0;
    skip_space(p);
    if (p->at < p->end && *p->at == close) {
        p->at++;
        p->depth--;
        return true;
    }
    for (;;) {
        skip_space(p);
        /* The member is counted before it is parsed (key and value zeroed), so that
         * of_value_free releases a half-parsed one too. */
        of_str *key = NULL;
        if (object && (key = grow((void **)&out->keys, out->len, &key_cap, sizeof *key)) == NULL)
            return fail(p, "out of memory");
        of_value *item = grow((void **)&out->as.items, out->len, &cap, sizeof *item);
        if (item == NULL)
            return fail(p, "out of memory");
        out->len++;
        if (object) {
            if (p->at >= p->end || *p->at != '"')
                return fail(p, "expected a string key");
            of_buf text = {0};
            bool parsed = parse_string(p, &text);
            key->ptr = text.ptr;
            key->len = text.len;
            if (!parsed)
                return false;
            skip_space(p);
            if (p->at >= p->end || *p->at != ':')
                return fail(p, "expected ':'");
            p->at++;
        }
        if (!parse_value(p, item))
            return false;
        skip_space(p);
        if (p->at < p->end && *p->at == ',') {
            p->at++;
            continue;
        }
        if (p->at < p->end && *p->at == close) {
            p->at++;
            p->depth--;
            return true;
        }
        return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool parse_value(parser *p, of_value *out) {
    skip_space(p);
    if (p->at >= p->end)
        return fail(p, "unexpected end of input");
    switch (*p->at) {
    case '{':
        return parse_container(p, out, true);
    case '[':
        return parse_container(p, out, false);
    case '"': {
        of_buf text = {0};
        bool parsed = parse_string(p, &text);
        out->type = OF_STRING;
        out->as.string = text.ptr;
        out->len = text.len;
        return parsed;
    }
    case 't':
        out->type = OF_BOOL;
        out->as.boolean = true;
        return literal(p, "true");
    case 'f':
        out->type = OF_BOOL;
        return literal(p, "false");
    case 'n':
        return literal(p, "null");
    default:
        return parse_number(p, out);
    }
}

/* Frees what `value` owns (not `value` itself). */
static void release(of_value *value) {
    switch (value->type) {
    case OF_NUMBER:
        free(value->as.number.text);
        break;
    case OF_STRING:
        free(value->as.string);
        break;
    case OF_ARRAY:
    case OF_OBJECT:
        for (size_t i = 0; i < value->len; i++) {
            release(&value->as.items[i]);
            if (value->keys)
                free((void *)value->keys[i].ptr);
        }
        free(value->as.items);
        free(value->keys);
        break;
    default:
        break;
    }
}

of_value *of_parse(const char *text, size_t len, of_buf *error) {
    of_value *root = calloc(1, sizeof *root);
    if (root == NULL) {
        if (error)
            of_buf_puts(error, "out of memory");
        return NULL;
    }
    parser p = {text, text, text + len, 0, error};
    bool parsed = parse_value(&p, root);
    if (parsed) {
        skip_space(&p);
        if (p.at != p.end)
            parsed = fail(&p, "trailing characters");
    }
    if (!parsed) {
        of_value_free(root);
        return NULL;
    }
    return root;
}

void of_value_free(of_value *value) {
    if (value == NULL)
        return;
    release(value);
    free(value);
}

/* ---- reading -------------------------------------------------------------------------------- */

of_type of_type_of(const of_value *value) { return value ? value->type : OF_NULL; }

bool of_is_null(const of_value *value) { return value && value->type == OF_NULL; }

const of_value *of_get(const of_value *object, const char *key) {
    if (object == NULL || object->type != OF_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = object->len; i-- > 0;)
        if (object->keys[i].len == n && memcmp(object->keys[i].ptr, key, n) == 0)
            return &object->as.items[i];
    return NULL;
}

const of_value *of_at(const of_value *array, size_t index) {
    if (array == NULL || array->type != OF_ARRAY || index >= array->len)
        return NULL;
    return &array->as.items[index];
}

size_t of_len(const of_value *value) {
    if (value == NULL)
        return 0;
    return value->type == OF_ARRAY || value->type == OF_OBJECT || value->type == OF_STRING
               ? value->len
               : 0;
}

of_str of_key_at(const of_value *object, size_t index) {
    if (object == NULL || object->type != OF_OBJECT || index >= object->len)
        return (of_str){"", 0};
    return object->keys[index];
}

const of_value *of_value_at(const of_value *object, size_t index) {
    if (object == NULL || object->type != OF_OBJECT || index >= object->len)
        return NULL;
    return &object->as.items[index];
}

const char *of_string(const of_value *value) {
    return value && value->type == OF_STRING ? value->as.string : NULL;
}

of_str of_string_n(const of_value *value) {
    if (value == NULL || value->type != OF_STRING)
        return (of_str){NULL, 0};
    return (of_str){value->as.string, value->len};
}

bool of_number(const of_value *value, double *out) {
    if (value == NULL || value->type != OF_NUMBER)
        return false;
    *out = value->as.number.value;
    return true;
}

bool of_int(const of_value *value, int64_t *out) {
    if (value == NULL || value->type != OF_NUMBER)
        return false;
    /* From the literal's digits: mantissa digits d1..dn, `point` of them before the decimal
     * point, times 10^exponent. The value is an integer when no non-zero digit falls after
     * the point once shifted; it is accumulated with an overflow check. */
    const char *text = value->as.number.text;
    bool negative = *text == '-';
    const char *digits = text + negative;
    char mantissa[64];
    size_t n = 0, nonzero = 0;
    long point = 0;
    bool in_fraction = false;
    const char *c = digits;
    for (; *c && *c != 'e' && *c != 'E'; c++) {
        if (*c == '.') {
            in_fraction = true;
            continue;
        }
        /* Leading zeros are not kept (in the fraction they move the point). Past 64
         * significant digits only zeros in the fraction can still make an int64. */
        if (n == 0 && *c == '0') {
            if (in_fraction)
                point--;
            continue;
        }
        if (n == sizeof mantissa) {
            if (*c != '0')
                nonzero++;
            if (!in_fraction)
                return false; /* more than 64 integer digits */
            continue;
        }
        mantissa[n++] = *c;
        if (!in_fraction)
            point++;
    }
    if (nonzero > 0)
        return false;
    long exponent = 0;
    if (*c == 'e' || *c == 'E') {
        c++;
        bool minus = *c == '-';
        if (*c == '+' || *c == '-')
            c++;
        for (; *c; c++) {
            if (exponent < 100000)
                exponent = exponent * 10 + (*c - '0');
        }
        if (minus)
            exponent = -exponent;
    }
    if (n == 0) {
        *out = 0;
        return true;
    }
    /* The integer part ends at digit `point + exponent` of the mantissa (point counts the
     * digits before the decimal point, less the fraction's leading zeros). */
    long end = point + exponent;
    if (end > 19)
        return false;
    for (long i = end < 0 ? 0 : end; i < (long)n; i++)
        if (mantissa[i] != '0')
            return false;
    uint64_t magnitude = 0;
    for (long i = 0; i < end; i++) {
        unsigned d = i < (long)n ? (unsigned)(mantissa[i] - '0') : 0;
        if (magnitude > (UINT64_MAX - d) / 10)
            return false;
        magnitude = magnitude * 10 + d;
    }
    if (negative) {
        if (magnitude > (uint64_t)INT64_MAX + 1)
            return false;
        *out = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
    } else {
        if (magnitude > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)magnitude;
    }
    return true;
}

bool of_bool(const of_value *value, bool *out) {
    if (value == NULL || value->type != OF_BOOL)
        return false;
    *out = value->as.boolean;
    return true;
}

const char *of_get_string(const of_value *object, const char *key) {
    return of_string(of_get(object, key));
}

/* ---- writing -------------------------------------------------------------------------------- */

/* As deep as the parser reads, so that any parsed value can be written back. */
#define MAX_WRITER_DEPTH OF_JSON_MAX_DEPTH

static bool bit(const uint64_t *set, int level) { return (set[level / 64] >> (level % 64)) & 1u; }

static void set_bit(uint64_t *set, int level, bool on) {
    if (on)
        set[level / 64] |= (uint64_t)1 << (level % 64);
    else
        set[level / 64] &= ~((uint64_t)1 << (level % 64));
}

/* Checks that a value may go here and writes the comma before it. */
static bool before_value(of_json_writer *w) {
    if (w->failed || w->buf.failed)
        return false;
    if (bit(w->in_object, w->depth)) {
        if (!w->after_key)
            return w->failed = true, false;
        w->after_key = false;
        return true;
    }
    if (bit(w->has_items, w->depth)) {
        if (w->depth == 0)
            return w->failed = true, false; /* a second top-level value */
        of_buf_append(&w->buf, ",", 1);
    }
    set_bit(w->has_items, w->depth, true);
    return true;
}

static void begin(of_json_writer *w, bool object) {
    if (!before_value(w))
        return;
    if (w->depth == MAX_WRITER_DEPTH) {
        w->failed = true;
        return;
    }
    w->depth++;
    set_bit(w->in_object, w->depth, object);
    set_bit(w->has_items, w->depth, false);
    of_buf_append(&w->buf, object ? "{" : "[", 1);
}

static void end(of_json_writer *w, bool object) {
    if (w->failed || w->depth == 0 || bit(w->in_object, w->depth) != object || w->after_key) {
        w->failed = true;
        return;
    }
    w->depth--;
    of_buf_append(&w->buf, object ? "}" : "]", 1);
}

void of_json_begin_object(of_json_writer *w) { begin(w, true); }
void of_json_end_object(of_json_writer *w) { end(w, true); }
void of_json_begin_array(of_json_writer *w) { begin(w, false); }
void of_json_end_array(of_json_writer *w) { end(w, false); }

/* Writes `text` as a JSON string; false (nothing written) if it is not UTF-8. */
static bool write_escaped(of_buf *buf, const char *text, size_t len) {
    if (!of_utf8_valid(text, len))
        return false;
    of_buf_append(buf, "\"", 1);
    const char *run = text;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        of_buf_append(buf, run, (size_t)(text + i - run));
        run = text + i + 1;
        switch (c) {
        case '"':
            of_buf_append(buf, "\\\"", 2);
            break;
        case '\\':
            of_buf_append(buf, "\\\\", 2);
            break;
        case '\n':
            of_buf_append(buf, "\\n", 2);
            break;
        case '\r':
            of_buf_append(buf, "\\r", 2);
            break;
        case '\t':
            of_buf_append(buf, "\\t", 2);
            break;
        default:
            of_buf_printf(buf, "\\u%04x", c);
        }
    }
    of_buf_append(buf, run, (size_t)(text + len - run));
    of_buf_append(buf, "\"", 1);
    return true;
}

void of_json_key(of_json_writer *w, const char *key) {
    if (w->failed || !bit(w->in_object, w->depth) || w->after_key) {
        w->failed = true;
        return;
    }
    if (bit(w->has_items, w->depth))
        of_buf_append(&w->buf, ",", 1);
    set_bit(w->has_items, w->depth, true);
    if (!write_escaped(&w->buf, key, strlen(key)))
        w->failed = true;
    of_buf_append(&w->buf, ":", 1);
    w->after_key = true;
}

void of_json_string_n(of_json_writer *w, const char *text, size_t len) {
    if (before_value(w) && !write_escaped(&w->buf, text, len))
        w->failed = true;
}

void of_json_string(of_json_writer *w, const char *text) {
    of_json_string_n(w, text, strlen(text));
}

void of_json_stringf(of_json_writer *w, const char *format, ...) {
    of_buf text = {0};
    va_list args;
    va_start(args, format);
    of_buf_vprintf(&text, format, args);
    va_end(args);
    if (text.failed)
        w->failed = true;
    else
        of_json_string_n(w, of_buf_cstr(&text), text.len);
    of_buf_free(&text);
}

void of_json_int(of_json_writer *w, int64_t number) {
    if (before_value(w))
        of_buf_printf(&w->buf, "%lld", (long long)number);
}

void of_json_double(of_json_writer *w, double number) {
    if (!isfinite(number)) {
        w->failed = true;
        return;
    }
    if (!before_value(w))
        return;
    char text[32];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, number);
        if (strtod(text, NULL) == number)
            break;
    }
    of_buf_puts(&w->buf, text);
}

void of_json_bool(of_json_writer *w, bool value) {
    if (before_value(w))
        of_buf_puts(&w->buf, value ? "true" : "false");
}

void of_json_null(of_json_writer *w) {
    if (before_value(w))
        of_buf_puts(&w->buf, "null");
}

void of_json_raw(of_json_writer *w, const char *json, size_t len) {
    if (before_value(w))
        of_buf_append(&w->buf, json, len);
}

void of_json_value(of_json_writer *w, const of_value *value) {
    switch (of_type_of(value)) {
    case OF_NULL:
        of_json_null(w);
        break;
    case OF_BOOL:
        of_json_bool(w, value->as.boolean);
        break;
    case OF_NUMBER:
        of_json_raw(w, value->as.number.text, strlen(value->as.number.text));
        break;
    case OF_STRING:
        of_json_string_n(w, value->as.string, value->len);
        break;
    case OF_ARRAY:
        of_json_begin_array(w);
        for (size_t i = 0; i < value->len; i++)
            of_json_value(w, &value->as.items[i]);
        of_json_end_array(w);
        break;
    case OF_OBJECT:
        of_json_begin_object(w);
        for (size_t i = 0; i < value->len; i++) {
            /* Keys are NUL-terminated but may hold NULs: write them whole. */
            if (!w->failed && bit(w->has_items, w->depth))
                of_buf_append(&w->buf, ",", 1);
            set_bit(w->has_items, w->depth, true);
            if (!write_escaped(&w->buf, value->keys[i].ptr, value->keys[i].len))
                w->failed = true;
            of_buf_append(&w->buf, ":", 1);
            w->after_key = true;
            of_json_value(w, &value->as.items[i]);
        }
        of_json_end_object(w);
        break;
    }
}

const char *of_json_text(of_json_writer *w) {
    bool complete = !w->failed && !w->buf.failed && w->depth == 0 && bit(w->has_items, 0);
    return complete ? w->buf.ptr : NULL;
}

void of_json_writer_free(of_json_writer *w) {
    of_buf_free(&w->buf);
    *w = (of_json_writer){0};
}

of_result of_ok_json(of_json_writer *w) {
    const char *text = of_json_text(w);
    of_result result;
    if (text == NULL) {
        result = w->buf.failed ? of_error(OF_FAILED, "the skill ran out of memory")
                               : of_error(OF_FAILED, "the skill wrote incomplete or misused JSON");
        of_json_writer_free(w);
        return result;
    }
    /* The buffer becomes the result: no copy. */
    result = (of_result){true, OF_FAILED, w->buf.ptr, w->buf.len};
    *w = (of_json_writer){0};
    return result;
}
