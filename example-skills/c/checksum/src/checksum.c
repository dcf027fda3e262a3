/* examples/checksum-c: checksums and digests of text or base64 bytes: CRC-32, Adler-32,
 * FNV-1a (64-bit) and SHA-256, each written out here from its specification. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "omniforge.h"

/* ---- the algorithms ---------------------------------------------------------------------- */

/* CRC-32 (IEEE 802.3, reflected, as zlib and PNG use it). */
static uint32_t crc32(const uint8_t *data, size_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Adler-32 (RFC 1950). */
static uint32_t adler32(const uint8_t *data, size_t len) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < len; i++) {
        a = (a + data[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

/* FNV-1a, 64-bit. */
static uint64_t fnv1a64(const uint8_t *data, size_t len) {
    uint64_t hash = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        hash ^= data[i];
        hash *= 0x100000001b3u;
    }
    return hash;
}

/* SHA-256 (FIPS 180-4). */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t state[8], const uint8_t block[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
               (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

static void sha256(const uint8_t *data, size_t len, uint8_t digest[32]) {
    uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t whole = len - len % 64;
    for (size_t i = 0; i < whole; i += 64)
        sha256_block(state, data + i);
    /* The tail, a 1 bit, zeros and the length in bits fill one or two last blocks. */
    uint8_t tail[128] = {0};
    size_t rest = len - whole;
    memcpy(tail, data + whole, rest);
    tail[rest] = 0x80;
    size_t blocks = rest + 1 + 8 <= 64 ? 1 : 2;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[blocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t i = 0; i < blocks; i++)
        sha256_block(state, tail + 64 * i);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            digest[4 * i + j] = (uint8_t)(state[i] >> (24 - 8 * j));
}

/* ---- input -------------------------------------------------------------------------------- */

static int base64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 with padding (RFC 4648 section 4); NULL if `text` is not that. */
static uint8_t *base64_decode(of_str text, size_t *len) {
    if (text.len % 4 != 0)
        return NULL;
    uint8_t *out = malloc(text.len / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < text.len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = text.ptr[i + j];
            /* Padding only at the very end: one or two '='. */
            if (c == '=' && i + 4 == text.len && j >= 2 && (j == 3 || text.ptr[i + 3] == '=')) {
                v[j] = 0;
                pad++;
            } else if ((v[j] = base64_value(c)) < 0) {
                free(out);
                return NULL;
            }
        }
        uint32_t group = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[n++] = (uint8_t)(group >> 16);
        if (pad < 2)
            out[n++] = (uint8_t)(group >> 8);
        if (pad < 1)
            out[n++] = (uint8_t)group;
    }
    *len = n;
    return out;
}

static void write_hex(of_json_writer *out, const uint8_t *bytes, size_t len) {
    static const char digits[] = "0123456789abcdef";
    char text[64];
    for (size_t i = 0; i < len; i++) {
        text[2 * i] = digits[bytes[i] >> 4];
        text[2 * i + 1] = digits[bytes[i] & 15];
    }
    of_json_string_n(out, text, 2 * len);
}

static void write_be(of_json_writer *out, uint64_t value, size_t bytes) {
    uint8_t be[8];
    for (size_t i = 0; i < bytes; i++)
        be[i] = (uint8_t)(value >> (8 * (bytes - 1 - i)));
    write_hex(out, be, bytes);
}

static const char *const ALGORITHMS[] = {"crc32", "adler32", "fnv1a64", "sha256"};
#define ALGORITHM_COUNT (sizeof ALGORITHMS / sizeof *ALGORITHMS)

/* ---- the skill ---------------------------------------------------------------------------- */

static of_result checksum(const of_context *ctx, const of_value *input) {
    (void)ctx;
    of_str text = of_string_n(of_get(input, "text"));
    of_str encoded = of_string_n(of_get(input, "base64"));
    if ((text.ptr == NULL) == (encoded.ptr == NULL))
        return of_error(OF_INVALID_INPUT, "give exactly one of text and base64");

    /* Which algorithms, in the order asked (all of them when not asked). */
    bool wanted[ALGORITHM_COUNT] = {0};
    const of_value *asked = of_get(input, "algorithms");
    if (asked == NULL) {
        for (size_t a = 0; a < ALGORITHM_COUNT; a++)
            wanted[a] = true;
    }
    for (size_t i = 0; i < of_len(asked); i++) {
        const char *name = of_string(of_at(asked, i));
        size_t a = 0;
        while (a < ALGORITHM_COUNT && (name == NULL || strcmp(name, ALGORITHMS[a]) != 0))
            a++;
        if (a == ALGORITHM_COUNT)
            return of_error(OF_INVALID_INPUT,
                            "unknown algorithm %s (known: crc32, adler32, fnv1a64, sha256)",
                            name ? name : "(not a string)");
        wanted[a] = true;
    }

    const uint8_t *data = (const uint8_t *)text.ptr;
    size_t len = text.len;
    uint8_t *decoded = NULL;
    if (encoded.ptr != NULL) {
        decoded = base64_decode(encoded, &len);
        if (decoded == NULL)
            return of_error(OF_INVALID_INPUT, "base64 is not valid padded base64");
        data = decoded;
    }

    of_json_writer out = {0};
    of_json_begin_object(&out);
    of_json_key(&out, "length");
    of_json_int(&out, (int64_t)len);
    for (size_t a = 0; a < ALGORITHM_COUNT; a++) {
        if (!wanted[a])
            continue;
        of_json_key(&out, ALGORITHMS[a]);
        if (a == 0) {
            write_be(&out, crc32(data, len), 4);
        } else if (a == 1) {
            write_be(&out, adler32(data, len), 4);
        } else if (a == 2) {
            write_be(&out, fnv1a64(data, len), 8);
        } else {
            uint8_t digest[32];
            sha256(data, len, digest);
            write_hex(&out, digest, sizeof digest);
        }
    }
    of_json_end_object(&out);
    free(decoded);
    return of_ok_json(&out);
}

OF_SKILL(checksum)
