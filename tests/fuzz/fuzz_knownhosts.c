/* libFuzzer target for lib/knownhosts: the known_hosts parser and lookup,
 * from memory.
 *
 * Input: one selector byte, then the file's text. Selector bits 0-1: the
 * host ("h", "127.0.0.1", "web1.example", "fe80::1%eth0"); bit 2: port 2222
 * instead of 22; bit 3: present no key (types only); bit 4: present key B
 * instead of key A (two fixed ed25519 blobs, which the seeds use).
 *
 * Invariants checked (__builtin_trap() on a break, so libFuzzer keeps the
 * input):
 *  - knownhosts_check and knownhosts_scan succeed on any text under the cap;
 *    the verdict is one of the four; a line number is 0 exactly when the
 *    verdict is NOTFOUND and is never past the last line; so are ca_line,
 *    bad_line and every line scan names; bad_why is set with bad_line;
 *  - MATCH and CHANGED only with a key presented, and with types set;
 *  - the types known for a host do not depend on the key presented;
 *  - the same text gives the same answer twice (no hidden state);
 *  - a blank line put in front moves every line number by one, nothing else;
 *  - the fingerprint of the key is "SHA256:" and 43 base64 characters.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -fno-sanitize-recover=all -Wall -Wextra -Werror -I. -D_GNU_SOURCE
 *   tests/fuzz/fuzz_knownhosts.c lib/ *.c proto/ *.c -lrsync -lssh2 -linih -lxxhash -lcrypto */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/knownhosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
        do {                                                                                       \
                if (!(c)) {                                                                        \
                        fprintf(stderr, "fuzz_knownhosts: %s:%d: %s\n", __FILE__, __LINE__, #c); \
                        __builtin_trap();                                                          \
                }                                                                                  \
        } while (0)

#define KEY_A "AAAAC3NzaC1lZDI1NTE5AAAAIIBew7OSGtfqDnDZI4Lvru6KaTlQTsvgRSpnmU4ak5t0"
#define KEY_B "AAAAC3NzaC1lZDI1NTE5AAAAIBdIC+7rp6jQt13Znv2csQ32ibeKXPJtVWzYyhHG/CGX"

static size_t decode(const char *s, uint8_t *out) {
        int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)strlen(s));

        return n > 0 ? (size_t)n : 0;   /* 68 characters, no padding */
}

static unsigned count_lines(const uint8_t *p, size_t n) {
        unsigned lines = n ? 1 : 0;

        for (size_t i = 0; i < n; i++)
                if (p[i] == '\n' && i + 1 < n)
                        lines++;
        return lines;
}

static unsigned max_note;
static unsigned n_notes;

static void note(void *ctx, unsigned line, const char *why) {
        unsigned lines = *(const unsigned *)ctx;

        CHECK(why && *why);
        CHECK(line >= 1 && line <= lines);
        CHECK(line > max_note);         /* one note per line, in order */
        max_note = line;
        n_notes++;
}

static void check_result(const struct knownhosts_result *r, unsigned lines, bool keyed) {
        CHECK(r->verdict == KNOWNHOSTS_NOTFOUND || r->verdict == KNOWNHOSTS_MATCH ||
              r->verdict == KNOWNHOSTS_CHANGED || r->verdict == KNOWNHOSTS_REVOKED);
        CHECK((r->line == 0) == (r->verdict == KNOWNHOSTS_NOTFOUND));
        CHECK(r->line <= lines && r->ca_line <= lines && r->bad_line <= lines);
        CHECK(!r->bad_line || (r->bad_why && *r->bad_why));
        if (!keyed)
                CHECK(r->verdict == KNOWNHOSTS_NOTFOUND);
        if (r->verdict == KNOWNHOSTS_MATCH || r->verdict == KNOWNHOSTS_CHANGED)
                CHECK(r->types != 0);
        CHECK((r->types & ~0x3fu) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const hosts[4] = { "h", "127.0.0.1", "web1.example", "fe80::1%eth0" };
        struct knownhosts_result r, r2, typed, shifted;
        uint8_t key[64], sel;
        const uint8_t *text;
        size_t key_len, len;
        const char *host;
        unsigned port, lines;
        char fp[KNOWNHOSTS_FINGERPRINT];
        uint8_t *copy;
        bool keyed;

        if (size < 1)
                return 0;
        sel = data[0];
        text = data + 1;
        len = size - 1;
        host = hosts[sel & 3];
        port = (sel & 4) ? 2222 : 22;
        keyed = !(sel & 8);
        key_len = decode((sel & 16) ? KEY_B : KEY_A, key);
        lines = count_lines(text, len);

        CHECK(knownhosts_check(text, len, host, port, keyed ? key : NULL, key_len, &r) == 0);
        check_result(&r, lines, keyed);
        CHECK(knownhosts_check(text, len, host, port, keyed ? key : NULL, key_len, &r2) == 0);
        CHECK(memcmp(&r, &r2, sizeof(r)) == 0);
        CHECK(knownhosts_check(text, len, host, port, NULL, 0, &typed) == 0);
        check_result(&typed, lines, false);
        CHECK(typed.types == r.types);
        CHECK(typed.ca_line == r.ca_line && typed.bad_line == r.bad_line);

        max_note = 0;
        n_notes = 0;
        CHECK(knownhosts_scan(text, len, note, &lines) == (int)n_notes);

        copy = malloc(len + 1);
        if (!copy)
                return 0;
        copy[0] = '\n';
        memcpy(copy + 1, text, len);
        CHECK(knownhosts_check(copy, len + 1, host, port, keyed ? key : NULL, key_len, &shifted) == 0);
        CHECK(shifted.verdict == r.verdict && shifted.types == r.types);
        CHECK(shifted.line == (r.line ? r.line + 1 : 0));
        CHECK(shifted.ca_line == (r.ca_line ? r.ca_line + 1 : 0));
        CHECK(shifted.bad_line == (r.bad_line ? r.bad_line + 1 : 0));
        free(copy);

        CHECK(knownhosts_fingerprint(key, key_len, fp, sizeof(fp)) == 0);
        CHECK(strlen(fp) == 7 + 43 && memcmp(fp, "SHA256:", 7) == 0);
        return 0;
}
