/* Unit tests for lib/delta.c: roundtrips over sizes and edit shapes, delta
 * size for a small change, and a hostile or mismatched delta (wrong basis,
 * truncated, trailing bytes, hand-built COPY/LITERAL commands, random
 * garbage) that must fail or stay bounded, never crash. */
#include <criterion/criterion.h>
#include <errno.h>
#include <librsync.h>
#include <stdlib.h>
#include <string.h>

#include "lib/delta.h"

#define MAX_OUT (16u << 20)

static uint64_t rnd(uint64_t *s) {
        /* xorshift64*: deterministic, seeded per test. */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

static uint8_t *rnd_buf(uint64_t *s, size_t len) {
        uint8_t *p = malloc(len ? len : 1);

        cr_assert_not_null(p);
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)rnd(s);
        return p;
}

/* Session-like text: compressible and repetitive, as PHP serialize() is. */
static uint8_t *text_buf(uint64_t *s, size_t len) {
        static const char words[] = "user_id|i:42;cart|a:3:{i:0;s:5:\"apple\";}csrf|s:32:\"";
        uint8_t *p = malloc(len ? len : 1);

        cr_assert_not_null(p);
        for (size_t i = 0; i < len; i++)
                p[i] = (i % 97 == 0) ? (uint8_t)('a' + rnd(s) % 26) : (uint8_t)words[i % (sizeof(words) - 1)];
        return p;
}

static void quiet(rs_loglevel level, char const *msg) {
        (void)level;
        (void)msg;
}

/* For the tests that feed thousands of bad deltas: librsync reports every
 * failed job on stderr at its default level. Each Criterion test runs in its
 * own process, so this does not leak into other tests. */
static void silence_librsync(void) {
        rs_trace_to(quiet);
}

static uint8_t *make_delta(const void *basis, size_t blen, const void *newp, size_t nlen, size_t *dlen) {
        struct delta_sig *sig = NULL;
        uint8_t *d = NULL;

        cr_assert_eq(delta_sig_new(basis, blen, &sig), 0);
        cr_assert_eq(delta_make(sig, newp, nlen, &d, dlen), 0);
        cr_assert_not_null(d);
        delta_sig_free(sig);
        return d;
}

/* Delta basis -> new, patch it back, compare. Returns the delta length. */
static size_t roundtrip(const void *basis, size_t blen, const void *newp, size_t nlen) {
        uint8_t *d, *out = NULL;
        size_t dlen, olen = 1234;

        d = make_delta(basis, blen, newp, nlen, &dlen);
        cr_assert_eq(delta_patch(basis, blen, d, dlen, MAX_OUT, &out, &olen), 0, "blen=%zu nlen=%zu", blen,
                     nlen);
        cr_assert_eq(olen, nlen, "blen=%zu nlen=%zu olen=%zu", blen, nlen, olen);
        if (nlen)
                cr_assert_eq(memcmp(out, newp, nlen), 0, "blen=%zu nlen=%zu", blen, nlen);
        free(out);
        free(d);
        return dlen;
}

static const size_t sizes[] = { 0, 1, 100, 8192, 100000 };

Test(delta, roundtrip_unchanged) {
        uint64_t s = 1;

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                uint8_t *a = text_buf(&s, sizes[i]);
                size_t dlen = roundtrip(a, sizes[i], a, sizes[i]);
                /* Identical content: header, a few COPYs, END. */
                cr_assert_lt(dlen, 64u, "size %zu: delta %zu", sizes[i], dlen);
                free(a);
        }
}

Test(delta, roundtrip_small_change) {
        uint64_t s = 2;

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                size_t n = sizes[i];
                uint8_t *a = text_buf(&s, n), *b = malloc(n ? n : 1);

                memcpy(b, a, n);
                if (n) {
                        b[n / 2] ^= 0x5a;
                        b[n - 1] ^= 0x01;
                }
                roundtrip(a, n, b, n);
                free(a);
                free(b);
        }
}

Test(delta, roundtrip_append_prepend) {
        uint64_t s = 3;

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                size_t n = sizes[i], extra = 37;
                uint8_t *a = text_buf(&s, n), *x = rnd_buf(&s, extra), *b = malloc(n + extra);

                memcpy(b, a, n); /* append */
                memcpy(b + n, x, extra);
                roundtrip(a, n, b, n + extra);
                memcpy(b, x, extra); /* prepend: everything shifts */
                memcpy(b + extra, a, n);
                size_t dlen = roundtrip(a, n, b, n + extra);
                if (n >= 8192)
                        cr_assert_lt(dlen, extra + 400, "prepend to %zu: delta %zu", n, dlen);
                free(a);
                free(x);
                free(b);
        }
}

Test(delta, roundtrip_different_content) {
        uint64_t s = 4;

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
                        uint8_t *a = rnd_buf(&s, sizes[i]), *b = rnd_buf(&s, sizes[j]);
                        roundtrip(a, sizes[i], b, sizes[j]);
                        free(a);
                        free(b);
                }
        }
}

Test(delta, small_change_small_delta) {
        uint64_t s = 5;
        uint8_t *a = text_buf(&s, 8192), *b = malloc(8192);

        memcpy(b, a, 8192);
        b[4000] ^= 1;
        size_t dlen = roundtrip(a, 8192, b, 8192);
        cr_assert_lt(dlen, 400u, "delta %zu", dlen);
        /* Random (incompressible) content behaves the same: block matching
         * does not depend on the content. */
        free(a);
        a = rnd_buf(&s, 8192);
        memcpy(b, a, 8192);
        b[0] ^= 1;
        dlen = roundtrip(a, 8192, b, 8192);
        cr_assert_lt(dlen, 400u, "delta %zu", dlen);
        free(a);
        free(b);
}

Test(delta, sig_is_small) {
        uint64_t s = 6;
        struct delta_sig *sig = NULL;
        const size_t n[] = { 0, 8192, 65536, 1 << 20 };

        for (size_t i = 0; i < 4; i++) {
                uint8_t *a = rnd_buf(&s, n[i]);
                cr_assert_eq(delta_sig_new(a, n[i], &sig), 0);
                if (n[i])
                        cr_assert_lt(delta_sig_size(sig) * 100, n[i] * 15, "size %zu: sig %zu", n[i],
                                     delta_sig_size(sig));
                else
                        cr_assert_lt(delta_sig_size(sig), 64u);
                delta_sig_free(sig);
                free(a);
        }
        delta_sig_free(NULL);
}

Test(delta, wrong_basis) {
        uint64_t s = 7;
        uint8_t *a = rnd_buf(&s, 8192), *other = rnd_buf(&s, 8192), *b = malloc(8192), *d, *out = NULL;
        size_t dlen, olen;
        int r;

        memcpy(b, a, 8192);
        b[100] ^= 1;
        d = make_delta(a, 8192, b, 8192, &dlen);
        /* Same length, other bytes: COPYs succeed, the result is wrong, and
         * only the content hash can tell. */
        r = delta_patch(other, 8192, d, dlen, MAX_OUT, &out, &olen);
        if (r == 0) {
                cr_assert(olen != 8192 || memcmp(out, b, 8192) != 0);
                free(out);
        } else {
                cr_assert_eq(r, -EBADMSG);
        }
        /* Shorter basis: COPYs read past its end. */
        out = NULL;
        r = delta_patch(other, 1000, d, dlen, MAX_OUT, &out, &olen);
        cr_assert_eq(r, -EBADMSG);
        cr_assert_null(out);
        r = delta_patch(NULL, 0, d, dlen, MAX_OUT, &out, &olen);
        cr_assert_eq(r, -EBADMSG);
        free(d);
        free(a);
        free(b);
        free(other);
}

Test(delta, truncated_and_trailing, .init = silence_librsync) {
        uint64_t s = 8;
        uint8_t *a = text_buf(&s, 8192), *b = text_buf(&s, 9000), *d, *out, *longer;
        size_t dlen, olen;

        d = make_delta(a, 8192, b, 9000, &dlen);
        for (size_t cut = 0; cut < dlen; cut++) {
                out = (uint8_t *)0x1;
                olen = 77;
                cr_assert_eq(delta_patch(a, 8192, d, cut, MAX_OUT, &out, &olen), -EBADMSG, "cut %zu", cut);
                /* Out-params are untouched on failure. */
                cr_assert_eq(out, (uint8_t *)0x1);
                cr_assert_eq(olen, 77u);
        }
        /* Bytes after END are not part of a delta. */
        longer = malloc(dlen + 1);
        memcpy(longer, d, dlen);
        longer[dlen] = 0;
        cr_assert_eq(delta_patch(a, 8192, longer, dlen + 1, MAX_OUT, &out, &olen), -EBADMSG);
        free(longer);
        free(d);
        free(a);
        free(b);
}

Test(delta, max_out) {
        uint64_t s = 9;
        uint8_t *a = text_buf(&s, 8192), *b = text_buf(&s, 8192), *d, *out = NULL;
        size_t dlen, olen;

        d = make_delta(a, 8192, b, 8192, &dlen);
        cr_assert_eq(delta_patch(a, 8192, d, dlen, 8191, &out, &olen), -EFBIG);
        cr_assert_null(out);
        cr_assert_eq(delta_patch(a, 8192, d, dlen, 0, &out, &olen), -EFBIG);
        cr_assert_eq(delta_patch(a, 8192, d, dlen, 8192, &out, &olen), 0);
        cr_assert_eq(olen, 8192u);
        cr_assert_eq(memcmp(out, b, 8192), 0);
        free(out);
        free(d);

        /* Empty result fits in max_out 0; *ret_out may be NULL. */
        d = make_delta(a, 8192, NULL, 0, &dlen);
        out = (uint8_t *)0x1;
        cr_assert_eq(delta_patch(a, 8192, d, dlen, 0, &out, &olen), 0);
        cr_assert_eq(olen, 0u);
        free(out);
        free(d);
        free(a);
        free(b);
}

/* Hand-built deltas: the librsync format is a be32 magic then commands. */
struct dbuf {
        uint8_t p[256];
        size_t n;
};

static void put(struct dbuf *d, uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; i--)
                d->p[d->n++] = (uint8_t)(v >> (8 * i));
}

static void put_magic(struct dbuf *d) {
        d->n = 0;
        put(d, RS_DELTA_MAGIC, 4);
}

static void copy8(struct dbuf *d, uint64_t pos, uint64_t len) {
        put(d, 0x54, 1); /* COPY_N8_N8 */
        put(d, pos, 8);
        put(d, len, 8);
}

Test(delta, hostile_commands, .init = silence_librsync) {
        uint8_t basis[100], *out = NULL;
        size_t olen;
        struct dbuf d;

        memset(basis, 'x', sizeof(basis));
        /* Sanity: a well-formed COPY works. */
        put_magic(&d);
        copy8(&d, 10, 90);
        put(&d, 0, 1);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, MAX_OUT, &out, &olen), 0);
        cr_assert_eq(olen, 90u);
        free(out);

        const uint64_t bad[][2] = {
                { 0, 101 },                    /* one byte past the end */
                { 100, 1 },                    /* starts at the end */
                { 99, UINT64_MAX >> 1 },       /* length overflows pos + len */
                { UINT64_MAX >> 1, 1 },        /* huge position */
                { UINT64_MAX, 1 },             /* negative position */
                { 0, UINT64_MAX },             /* negative length */
                { 0, 0 },                      /* empty COPY */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                put_magic(&d);
                copy8(&d, bad[i][0], bad[i][1]);
                put(&d, 0, 1);
                out = NULL;
                cr_assert_eq(delta_patch(basis, 100, d.p, d.n, MAX_OUT, &out, &olen), -EBADMSG, "case %zu", i);
                cr_assert_null(out);
        }

        /* COPY into an empty basis. */
        put_magic(&d);
        copy8(&d, 0, 1);
        put(&d, 0, 1);
        cr_assert_eq(delta_patch(NULL, 0, d.p, d.n, MAX_OUT, &out, &olen), -EBADMSG);

        /* LITERAL longer than the rest of the delta. */
        put_magic(&d);
        put(&d, 0x44, 1); /* LITERAL_N8 */
        put(&d, UINT64_MAX >> 1, 8);
        put(&d, 0x41424344, 4);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, MAX_OUT, &out, &olen), -EBADMSG);

        /* Reserved command byte, wrong magic, missing END. */
        put_magic(&d);
        put(&d, 0x55, 1);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, MAX_OUT, &out, &olen), -EBADMSG);
        d.n = 0;
        put(&d, RS_DELTA_MAGIC + 1, 4);
        put(&d, 0, 1);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, MAX_OUT, &out, &olen), -EBADMSG);
        put_magic(&d);
        put(&d, 0x01, 1);
        put(&d, 'z', 1);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, MAX_OUT, &out, &olen), -EBADMSG);

        /* Amplification: 14 COPYs of the whole basis in a 200-byte delta
         * would be 1400 bytes; the cap stops it. */
        put_magic(&d);
        for (int i = 0; i < 14; i++)
                copy8(&d, 0, 100);
        put(&d, 0, 1);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, 1399, &out, &olen), -EFBIG);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, 1000, &out, &olen), -EFBIG);
        cr_assert_eq(delta_patch(basis, 100, d.p, d.n, 1400, &out, &olen), 0);
        cr_assert_eq(olen, 1400u);
        free(out);
}

/* Random bytes, random bytes after a valid magic (so the command parser
 * runs), and valid deltas with random bytes flipped: each either fails with
 * -EBADMSG/-EFBIG or yields at most max_out bytes. */
Test(delta, garbage, .init = silence_librsync) {
        uint64_t s = 0x5e55;
        uint8_t *basis = text_buf(&s, 4096), *b = text_buf(&s, 5000), *good, *out;
        size_t glen, olen, max = 8192;
        int ok = 0, bad = 0;

        good = make_delta(basis, 4096, b, 5000, &glen);
        for (int iter = 0; iter < 6000; iter++) {
                size_t n = (size_t)(rnd(&s) % 300);
                uint8_t *d;

                if (iter % 3 == 2) {
                        n = glen;
                        d = malloc(n);
                        memcpy(d, good, n);
                        for (int k = 1 + (int)(rnd(&s) % 4); k > 0; k--)
                                d[rnd(&s) % n] = (uint8_t)rnd(&s);
                } else {
                        d = rnd_buf(&s, n);
                        if (iter % 3 == 1 && n >= 4) {
                                d[0] = 0x72, d[1] = 0x73, d[2] = 0x02, d[3] = 0x36;
                        }
                }
                out = NULL;
                olen = SIZE_MAX;
                int r = delta_patch(basis, 4096, d, n, max, &out, &olen);
                if (r == 0) {
                        cr_assert_leq(olen, max);
                        ok++;
                } else {
                        cr_assert(r == -EBADMSG || r == -EFBIG, "iter %d: r=%d", iter, r);
                        cr_assert_null(out);
                        bad++;
                }
                free(out);
                free(d);
        }
        cr_assert_gt(bad, 0);
        cr_log_info("garbage: %d patched, %d rejected", ok, bad);
        free(good);
        free(basis);
        free(b);
}
