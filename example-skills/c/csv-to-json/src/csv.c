/* examples/csv-to-json-c: CSV (RFC 4180: quoted fields, doubled quotes, line breaks inside
 * quotes, CRLF or LF) to JSON rows, keyed by the header line or as arrays. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "omniforge.h"

/* One record: its fields' text. */
typedef struct record {
    of_buf *fields;
    size_t len;
    size_t cap;
    /* Line on which the record starts, for messages. */
    size_t line;
} record;

typedef struct table {
    record *records;
    size_t len;
    size_t cap;
} table;

/* Makes room for one more of `*len` items of `size` bytes (doubling, from `first`). */
static bool reserve(void **items, size_t len, size_t *cap, size_t size, size_t first) {
    if (len < *cap)
        return true;
    size_t grown_cap = *cap ? *cap * 2 : first;
    void *grown = realloc(*items, grown_cap * size);
    if (grown == NULL)
        return false;
    *items = grown;
    *cap = grown_cap;
    return true;
}

static bool push_field(record *r) {
    if (!reserve((void **)&r->fields, r->len, &r->cap, sizeof *r->fields, 8))
        return false;
    r->fields[r->len++] = (of_buf){0};
    return true;
}

static record *push_record(table *t, size_t line) {
    if (!reserve((void **)&t->records, t->len, &t->cap, sizeof *t->records, 16))
        return NULL;
    record *r = &t->records[t->len++];
    *r = (record){.line = line};
    return push_field(r) ? r : NULL;
}

static void free_table(table *t) {
    for (size_t i = 0; i < t->len; i++) {
        for (size_t j = 0; j < t->records[i].len; j++)
            of_buf_free(&t->records[i].fields[j]);
        free(t->records[i].fields);
    }
    free(t->records);
}

/* Splits `csv` into records; on malformed input returns false with the reason in `error`. */
static bool parse(of_str csv, char delimiter, table *t, of_buf *error) {
    size_t line = 1;
    size_t i = 0;
    while (i < csv.len) {
        /* A blank line is no record. */
        if (csv.ptr[i] == '\n' || (csv.ptr[i] == '\r' && i + 1 < csv.len && csv.ptr[i + 1] == '\n')) {
            i += csv.ptr[i] == '\r' ? 2 : 1;
            line++;
            continue;
        }
        record *r = push_record(t, line);
        if (r == NULL)
            goto oom;
        for (;;) {
            of_buf *field = &r->fields[r->len - 1];
            if (i < csv.len && csv.ptr[i] == '"') {
                size_t opened = line;
                i++;
                for (;;) {
                    if (i >= csv.len) {
                        of_buf_printf(error, "the quoted field opened on line %zu never closes", opened);
                        return false;
                    }
                    char c = csv.ptr[i++];
                    if (c == '"') {
                        if (i < csv.len && csv.ptr[i] == '"') {
                            of_buf_append(field, "\"", 1);
                            i++;
                            continue;
                        }
                        break;
                    }
                    if (c == '\n')
                        line++;
                    of_buf_append(field, &c, 1);
                }
                bool at_end = i >= csv.len || csv.ptr[i] == delimiter || csv.ptr[i] == '\n' ||
                              (csv.ptr[i] == '\r' && i + 1 < csv.len && csv.ptr[i + 1] == '\n');
                if (!at_end) {
                    of_buf_printf(error, "line %zu: text after a closing quote", line);
                    return false;
                }
            } else {
                size_t start = i;
                while (i < csv.len && csv.ptr[i] != delimiter && csv.ptr[i] != '\n' &&
                       !(csv.ptr[i] == '\r' && i + 1 < csv.len && csv.ptr[i + 1] == '\n'))
                    i++;
                of_buf_append(field, csv.ptr + start, i - start);
            }
            if (field->failed)
                goto oom;
            if (i < csv.len && csv.ptr[i] == delimiter) {
                i++;
                if (!push_field(r))
                    goto oom;
                continue;
            }
            /* End of the record: a line break or the end of the text. */
            if (i < csv.len) {
                i += csv.ptr[i] == '\r' ? 2 : 1;
                line++;
            }
            break;
        }
    }
    return true;
oom:
    of_buf_puts(error, "out of memory");
    return false;
}

/* A field as a JSON number when asked and it is one by JSON's grammar, else as a string. */
static void write_field(of_json_writer *out, of_buf *field, bool numbers) {
    const char *text = of_buf_cstr(field);
    /* The parser allows space around a value; a field with space is text. */
    bool trimmed = field->len > 0 && !isspace((unsigned char)text[0]) &&
                   !isspace((unsigned char)text[field->len - 1]);
    if (numbers && trimmed) {
        of_value *value = of_parse(text, field->len, NULL);
        bool number = of_type_of(value) == OF_NUMBER;
        of_value_free(value);
        if (number) {
            of_json_raw(out, text, field->len);
            return;
        }
    }
    of_json_string_n(out, text, field->len);
}

static of_result csv_to_json(const of_context *ctx, const of_value *input) {
    (void)ctx;
    of_str csv = of_string_n(of_get(input, "csv"));
    const char *delimiter = of_get_string(input, "delimiter");
    if (delimiter == NULL)
        delimiter = ",";
    if (strlen(delimiter) != 1 || strchr("\"\r\n", *delimiter) != NULL)
        return of_error(OF_INVALID_INPUT, "delimiter must be one character, not a quote or line break");
    bool header = true, numbers = false;
    of_bool(of_get(input, "header"), &header);
    of_bool(of_get(input, "numbers"), &numbers);

    table t = {0};
    of_buf why = {0};
    if (!parse(csv, *delimiter, &t, &why)) {
        of_result failed = of_error(OF_INVALID_INPUT, "%s", of_buf_cstr(&why));
        of_buf_free(&why);
        free_table(&t);
        return failed;
    }
    of_buf_free(&why);

    size_t first = 0;
    record *columns = NULL;
    if (header) {
        if (t.len == 0) {
            free_table(&t);
            return of_error(OF_INVALID_INPUT, "the CSV is empty: it has no header line");
        }
        columns = &t.records[0];
        first = 1;
        for (size_t a = 0; a < columns->len; a++)
            for (size_t b = a + 1; b < columns->len; b++)
                if (strcmp(of_buf_cstr(&columns->fields[a]), of_buf_cstr(&columns->fields[b])) == 0) {
                    of_result failed = of_error(OF_INVALID_INPUT, "the header names column \"%s\" twice",
                                                of_buf_cstr(&columns->fields[a]));
                    free_table(&t);
                    return failed;
                }
        for (size_t i = first; i < t.len; i++)
            if (t.records[i].len != columns->len) {
                of_result failed = of_error(OF_INVALID_INPUT, "line %zu has %zu fields; the header has %zu",
                                            t.records[i].line, t.records[i].len, columns->len);
                free_table(&t);
                return failed;
            }
    }

    of_json_writer out = {0};
    of_json_begin_object(&out);
    if (columns) {
        of_json_key(&out, "columns");
        of_json_begin_array(&out);
        for (size_t j = 0; j < columns->len; j++)
            of_json_string_n(&out, of_buf_cstr(&columns->fields[j]), columns->fields[j].len);
        of_json_end_array(&out);
    }
    of_json_key(&out, "rows");
    of_json_begin_array(&out);
    for (size_t i = first; i < t.len; i++) {
        record *r = &t.records[i];
        if (columns) {
            of_json_begin_object(&out);
            for (size_t j = 0; j < r->len; j++) {
                of_json_key(&out, of_buf_cstr(&columns->fields[j]));
                write_field(&out, &r->fields[j], numbers);
            }
            of_json_end_object(&out);
        } else {
            of_json_begin_array(&out);
            for (size_t j = 0; j < r->len; j++)
                write_field(&out, &r->fields[j], numbers);
            of_json_end_array(&out);
        }
    }
    of_json_end_array(&out);
    of_json_key(&out, "count");
    of_json_int(&out, (int64_t)(t.len - first));
    of_json_end_object(&out);
    free_table(&t);
    of_log(OF_DEBUG, "converted %zu rows", t.len - first);
    return of_ok_json(&out);
}

OF_SKILL(csv_to_json)
