/* Tests for proto/buf: the bounds-checked reader and the growing writer.
 *
 * Modelled on OpenSSH regress/unittests/sshbuf/test_sshbuf_getput_basic.c:
 * every getter gets an exact case, a case truncated at every point and a
 * giant length, and after each failure both the cursor and the out-parameter
 * must be unchanged (out-parameters are pre-filled with a 0xa5 sentinel).
 * Input is always copied to a heap block of exactly its size so that ASan
 * reports a read one byte past the end. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"

#define SENT 0xa5
#define SENT64 UINT64_C(0xa5a5a5a5a5a5a5a5)

static uint8_t *heap(const void *p, size_t n) {
        uint8_t *b = malloc(n ? n : 1);

        cr_assert_not_null(b);
        if (n)
                memcpy(b, p, n);
        return b;
}

/* Sentinel of an integer of w bytes. */
static uint64_t sent_w(int w) {
        return w == 8 ? SENT64 : SENT64 >> (64 - 8 * w);
}

/* Call the getter for width w (1, 2, 4, 8) on a sentinel-filled variable of
 * exactly that type; *v receives the variable's value afterwards. */
static int get_w(struct proto_rd *rd, int w, uint64_t *v) {
        uint8_t a = (uint8_t)sent_w(1);
        uint16_t b = (uint16_t)sent_w(2);
        uint32_t c = (uint32_t)sent_w(4);
        uint64_t d = sent_w(8);
        int r;

        switch (w) {
        case 1: r = proto_get_u8(rd, &a); *v = a; break;
        case 2: r = proto_get_u16(rd, &b); *v = b; break;
        case 4: r = proto_get_u32(rd, &c); *v = c; break;
        default: r = proto_get_u64(rd, &d); *v = d; break;
        }
        return r;
}

static const int widths[] = { 1, 2, 4, 8 };

/* ---- integers ---------------------------------------------------------- */

Test(proto_buf, int_exact_big_endian) {
        /* High bits set everywhere: a sign-extension slip shows up. */
        static const uint8_t in[8] = { 0xf1, 0xe2, 0xd3, 0xc4, 0xb5, 0xa6, 0x97, 0x88 };

        for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
                int w = widths[i];
                uint8_t *b = heap(in, (size_t)w);
                struct proto_rd rd;
                uint64_t want = 0, v;

                for (int j = 0; j < w; j++)
                        want = want << 8 | in[j];
                proto_rd_init(&rd, b, (size_t)w);
                cr_assert_eq(get_w(&rd, w, &v), 0, "width %d", w);
                cr_assert_eq(v, want, "width %d: %#llx != %#llx", w, (unsigned long long)v,
                             (unsigned long long)want);
                cr_assert_eq(rd.off, (size_t)w);
                cr_assert_eq(proto_rd_left(&rd), 0);
                cr_assert_eq(proto_rd_end(&rd), 0);
                free(b);
        }
}

Test(proto_buf, int_extremes) {
        static const uint8_t zero[8] = { 0 };
        static const uint8_t ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

        for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
                int w = widths[i];
                struct proto_rd rd;
                uint64_t v;

                proto_rd_init(&rd, zero, (size_t)w);
                cr_assert_eq(get_w(&rd, w, &v), 0);
                cr_assert_eq(v, 0);
                proto_rd_init(&rd, ones, (size_t)w);
                cr_assert_eq(get_w(&rd, w, &v), 0);
                cr_assert_eq(v, w == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * w)) - 1);
        }
}

/* One lead byte is consumed first, so a getter that failed must leave the
 * cursor at 1, not 0 and not anywhere further. */
Test(proto_buf, int_truncated_every_point) {
        static const uint8_t in[9] = { 0x42, 1, 2, 3, 4, 5, 6, 7, 8 };

        for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
                int w = widths[i];

                for (int k = 0; k < w; k++) {
                        uint8_t *b = heap(in, (size_t)(1 + k));
                        struct proto_rd rd;
                        uint8_t lead = 0;
                        uint64_t v;

                        proto_rd_init(&rd, b, (size_t)(1 + k));
                        cr_assert_eq(proto_get_u8(&rd, &lead), 0);
                        cr_assert_eq(lead, 0x42);
                        cr_assert_eq(get_w(&rd, w, &v), -EBADMSG, "width %d, %d bytes", w, k);
                        cr_assert_eq(rd.off, 1, "width %d, %d bytes: cursor moved", w, k);
                        cr_assert_eq(v, sent_w(w), "width %d, %d bytes: out written", w, k);
                        /* Again: a failure is repeatable, nothing was eaten. */
                        cr_assert_eq(get_w(&rd, w, &v), -EBADMSG);
                        cr_assert_eq(rd.off, 1);
                        free(b);
                }
        }
}

/* The streaming use: a getter fails on a short read, more bytes arrive, and
 * the same reader then decodes the value as if nothing had happened. */
Test(proto_buf, int_resume_after_short) {
        static const uint8_t in[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
        struct proto_rd rd;
        uint64_t v;

        proto_rd_init(&rd, in, 3);
        cr_assert_eq(get_w(&rd, 8, &v), -EBADMSG);
        rd.len = 8;
        cr_assert_eq(get_w(&rd, 8, &v), 0);
        cr_assert_eq(v, UINT64_C(0x0123456789abcdef));
}

Test(proto_buf, int_trailing) {
        static const uint8_t in[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

        for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
                int w = widths[i];
                struct proto_rd rd;
                uint64_t v;

                proto_rd_init(&rd, in, (size_t)w + 1);
                cr_assert_eq(get_w(&rd, w, &v), 0);
                cr_assert_eq(proto_rd_left(&rd), 1);
                cr_assert_eq(proto_rd_end(&rd), -EBADMSG, "width %d: trailing byte accepted", w);
                cr_assert_eq(rd.off, (size_t)w, "proto_rd_end moved the cursor");
        }
}

Test(proto_buf, rd_end) {
        static const uint8_t in[2] = { 0, 0 };
        struct proto_rd rd;
        uint8_t v;

        proto_rd_init(&rd, NULL, 0);
        cr_assert_eq(proto_rd_end(&rd), 0);
        cr_assert_eq(proto_get_u8(&rd, &v), -EBADMSG);
        proto_rd_init(&rd, in, 2);
        cr_assert_eq(proto_rd_end(&rd), -EBADMSG);
        cr_assert_eq(proto_get_u8(&rd, &v), 0);
        cr_assert_eq(proto_rd_end(&rd), -EBADMSG);
        cr_assert_eq(proto_get_u8(&rd, &v), 0);
        cr_assert_eq(proto_rd_end(&rd), 0);
}

/* ---- blob: u32 length + bytes ------------------------------------------ */

static const uint8_t blob_sent_byte = 0;
#define BLOB_SENT_PTR (&blob_sent_byte)
#define BLOB_SENT_LEN ((size_t)0xa5a5a5a5)

/* Run proto_get_blob expecting failure r; check nothing changed. */
static void blob_fails(const uint8_t *in, size_t n, size_t lead, size_t max, int want, const char *what) {
        uint8_t *b = heap(in, n);
        const uint8_t *p = BLOB_SENT_PTR;
        size_t plen = BLOB_SENT_LEN;
        struct proto_rd rd;

        proto_rd_init(&rd, b, n);
        rd.off = lead;
        cr_assert_eq(proto_get_blob(&rd, max, &p, &plen), want, "%s: want %d", what, want);
        cr_assert_eq(rd.off, lead, "%s: cursor moved", what);
        cr_assert_eq(p, BLOB_SENT_PTR, "%s: *ret written", what);
        cr_assert_eq(plen, BLOB_SENT_LEN, "%s: *ret_len written", what);
        free(b);
}

Test(proto_buf, blob_exact) {
        /* Embedded NUL and 0xff are fine in a blob: it is binary. */
        static const uint8_t in[] = { 0, 0, 0, 4, 'a', 0, 0xff, 'c' };
        uint8_t *b = heap(in, sizeof(in));
        const uint8_t *p = BLOB_SENT_PTR;
        size_t plen = BLOB_SENT_LEN;
        struct proto_rd rd;

        proto_rd_init(&rd, b, sizeof(in));
        cr_assert_eq(proto_get_blob(&rd, 4, &p, &plen), 0);
        cr_assert_eq(p, b + 4, "blob must point into the reader's buffer");
        cr_assert_eq(plen, 4);
        cr_assert_eq(rd.off, sizeof(in));
        cr_assert_eq(proto_rd_end(&rd), 0);
        free(b);
}

Test(proto_buf, blob_empty) {
        static const uint8_t in[] = { 0, 0, 0, 0 };
        uint8_t *b = heap(in, sizeof(in));
        const uint8_t *p = BLOB_SENT_PTR;
        size_t plen = BLOB_SENT_LEN;
        struct proto_rd rd;

        proto_rd_init(&rd, b, sizeof(in));
        cr_assert_eq(proto_get_blob(&rd, 0, &p, &plen), 0);
        cr_assert_eq(plen, 0);
        cr_assert_eq(p, b + 4);
        cr_assert_eq(proto_rd_end(&rd), 0);
        free(b);
}

Test(proto_buf, blob_truncated_every_point) {
        static const uint8_t in[] = { 0x42, 0, 0, 0, 3, 'a', 'b', 'c' };

        for (size_t k = 1; k < sizeof(in); k++) {
                char what[32];

                snprintf(what, sizeof(what), "%zu of %zu bytes", k, sizeof(in));
                blob_fails(in, k, 1, 1024, -EBADMSG, what);
        }
}

/* The cap is tested before the bytes left: a giant length is -EMSGSIZE
 * straight away, and a sane length beyond the buffer is -EBADMSG. */
Test(proto_buf, blob_giant_vs_short) {
        static const uint8_t giant[] = { 0xff, 0xff, 0xff, 0xff };
        static const uint8_t big[] = { 0x80, 0, 0, 0, 'x' };
        static const uint8_t over_by_one[] = { 0, 0, 0, 5, 'a', 'b', 'c', 'd' };
        static const uint8_t beyond[] = { 0, 0, 0, 10, 'a', 'b', 'c' };
        static const uint8_t capped[] = { 0, 0, 0, 3, 'a', 'b', 'c' };

        blob_fails(giant, sizeof(giant), 0, 1 << 20, -EMSGSIZE, "0xffffffff");
        blob_fails(big, sizeof(big), 0, 1 << 20, -EMSGSIZE, "0x80000000");
        blob_fails(capped, sizeof(capped), 0, 2, -EMSGSIZE, "3 > max 2");
        blob_fails(capped, sizeof(capped), 0, 0, -EMSGSIZE, "3 > max 0");
        blob_fails(over_by_one, sizeof(over_by_one), 0, 1024, -EBADMSG, "5 with 4 left");
        blob_fails(beyond, sizeof(beyond), 0, 1024, -EBADMSG, "10 with 3 left");
        /* An unlimited cap must still not overflow the remaining-bytes test. */
        blob_fails(giant, sizeof(giant), 0, SIZE_MAX, -EBADMSG, "0xffffffff, max SIZE_MAX");
}

Test(proto_buf, blob_trailing) {
        static const uint8_t in[] = { 0, 0, 0, 1, 'a', 'z' };
        const uint8_t *p;
        size_t plen;
        struct proto_rd rd;

        proto_rd_init(&rd, in, sizeof(in));
        cr_assert_eq(proto_get_blob(&rd, 16, &p, &plen), 0);
        cr_assert_eq(plen, 1);
        cr_assert_eq(proto_rd_end(&rd), -EBADMSG);
}

/* ---- str: u8 length + bytes, copied and NUL-terminated ------------------ */

#define OUT_SIZE 300

static void out_sentinel(char *out) {
        memset(out, SENT, OUT_SIZE);
}

static void assert_out_untouched(const char *out, const char *what) {
        for (size_t i = 0; i < OUT_SIZE; i++)
                cr_assert_eq((uint8_t)out[i], SENT, "%s: out[%zu] written", what, i);
}

static void str_fails(const uint8_t *in, size_t n, size_t lead, size_t max, int want, const char *what) {
        uint8_t *b = heap(in, n);
        char out[OUT_SIZE];
        struct proto_rd rd;

        out_sentinel(out);
        proto_rd_init(&rd, b, n);
        rd.off = lead;
        cr_assert_eq(proto_get_str(&rd, max, out), want, "%s: want %d", what, want);
        cr_assert_eq(rd.off, lead, "%s: cursor moved", what);
        assert_out_untouched(out, what);
        free(b);
}

Test(proto_buf, str_exact) {
        static const uint8_t in[] = { 3, 'a', 'b', 'c' };
        uint8_t *b = heap(in, sizeof(in));
        char out[OUT_SIZE];
        struct proto_rd rd;

        out_sentinel(out);
        proto_rd_init(&rd, b, sizeof(in));
        cr_assert_eq(proto_get_str(&rd, 255, out), 0);
        cr_assert_str_eq(out, "abc");
        cr_assert_eq((uint8_t)out[4], SENT, "wrote past the terminator");
        cr_assert_eq(rd.off, 4);
        cr_assert_eq(proto_rd_end(&rd), 0);
        free(b);
}

Test(proto_buf, str_empty) {
        static const uint8_t in[] = { 0 };
        char out[OUT_SIZE];
        struct proto_rd rd;

        out_sentinel(out);
        proto_rd_init(&rd, in, 1);
        cr_assert_eq(proto_get_str(&rd, 0, out), 0);
        cr_assert_eq(out[0], 0);
        cr_assert_eq((uint8_t)out[1], SENT);
        cr_assert_eq(rd.off, 1);
}

Test(proto_buf, str_255) {
        uint8_t in[256];
        char out[OUT_SIZE];
        uint8_t *b;
        struct proto_rd rd;

        in[0] = 255;
        memset(in + 1, 'x', 255);
        b = heap(in, sizeof(in));
        out_sentinel(out);
        proto_rd_init(&rd, b, sizeof(in));
        cr_assert_eq(proto_get_str(&rd, 255, out), 0);
        cr_assert_eq(strlen(out), 255);
        cr_assert_eq((uint8_t)out[256], SENT);
        cr_assert_eq(proto_rd_end(&rd), 0);
        /* The same bytes against a smaller cap. */
        str_fails(in, sizeof(in), 0, 254, -EMSGSIZE, "255 > max 254");
        str_fails(in, sizeof(in), 0, 64, -EMSGSIZE, "255 > max 64");
        free(b);
}

Test(proto_buf, str_truncated_every_point) {
        static const uint8_t in[] = { 0x42, 3, 'a', 'b', 'c' };

        for (size_t k = 1; k < sizeof(in); k++) {
                char what[32];

                snprintf(what, sizeof(what), "%zu of %zu bytes", k, sizeof(in));
                str_fails(in, k, 1, 255, -EBADMSG, what);
        }
}

Test(proto_buf, str_giant_vs_short) {
        static const uint8_t giant[] = { 200 };
        static const uint8_t beyond[] = { 10, 'a', 'b', 'c' };
        static const uint8_t over[] = { 5, 'a', 'b', 'c', 'd', 'e' };

        str_fails(giant, sizeof(giant), 0, 64, -EMSGSIZE, "200 > max 64, no bytes");
        str_fails(over, sizeof(over), 0, 4, -EMSGSIZE, "5 > max 4");
        str_fails(beyond, sizeof(beyond), 0, 64, -EBADMSG, "10 with 3 left");
}

/* A name on the wire is never truncated at a NUL, wherever it is. */
Test(proto_buf, str_embedded_nul) {
        for (size_t pos = 0; pos < 3; pos++) {
                uint8_t in[] = { 3, 'a', 'b', 'c' };
                char what[32];

                in[1 + pos] = 0;
                snprintf(what, sizeof(what), "NUL at %zu", pos);
                str_fails(in, sizeof(in), 0, 255, -EBADMSG, what);
        }
        {
                static const uint8_t only_nul[] = { 1, 0 };
                str_fails(only_nul, sizeof(only_nul), 0, 255, -EBADMSG, "just a NUL");
        }
}

Test(proto_buf, getter_sequence) {
        static const uint8_t in[] = {
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
                2, 'h', 'i', 0, 0, 0, 2, 0xde, 0xad,
        };
        struct proto_rd rd;
        uint8_t a;
        uint16_t b;
        uint32_t c;
        uint64_t d;
        char s[OUT_SIZE];
        const uint8_t *p;
        size_t plen;

        proto_rd_init(&rd, in, sizeof(in));
        cr_assert_eq(proto_get_u8(&rd, &a), 0);
        cr_assert_eq(proto_get_u16(&rd, &b), 0);
        cr_assert_eq(proto_get_u32(&rd, &c), 0);
        cr_assert_eq(proto_get_u64(&rd, &d), 0);
        cr_assert_eq(proto_get_str(&rd, 64, s), 0);
        cr_assert_eq(proto_get_blob(&rd, 64, &p, &plen), 0);
        cr_assert_eq(proto_rd_end(&rd), 0);
        cr_assert_eq(a, 0x01);
        cr_assert_eq(b, 0x0203);
        cr_assert_eq(c, 0x04050607);
        cr_assert_eq(d, UINT64_C(0x08090a0b0c0d0e0f));
        cr_assert_str_eq(s, "hi");
        cr_assert_eq(plen, 2);
        cr_assert_eq(p[0], 0xde);
        cr_assert_eq(p[1], 0xad);
}

/* ---- writer ------------------------------------------------------------ */

static void assert_bytes(const struct proto_wr *wr, const uint8_t *want, size_t n) {
        cr_assert_eq(wr->len, n, "len %zu, want %zu", wr->len, n);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(wr->buf[i], want[i], "byte %zu: %#x, want %#x", i, wr->buf[i], want[i]);
}

Test(proto_buf, wr_init_free) {
        struct proto_wr wr;

        memset(&wr, SENT, sizeof(wr));
        proto_wr_init(&wr);
        cr_assert_null(wr.buf);
        cr_assert_eq(wr.len, 0);
        cr_assert_eq(wr.cap, 0);
        cr_assert_eq(proto_wr_error(&wr), 0);
        proto_wr_free(&wr);     /* never allocated */
        proto_put_u8(&wr, 1);
        proto_wr_free(&wr);
        cr_assert_null(wr.buf);
        cr_assert_eq(wr.len, 0);
        proto_wr_free(&wr);     /* twice */
}

Test(proto_buf, wr_big_endian_layout) {
        static const uint8_t want[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                        0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
                                        0xff, 0xfe, 0xff, 0xfd, 0xfc, 0xfb, 0xfa };
        struct proto_wr wr;

        proto_wr_init(&wr);
        proto_put_u8(&wr, 0x01);
        proto_put_u16(&wr, 0x0203);
        proto_put_u32(&wr, 0x04050607);
        proto_put_u64(&wr, UINT64_C(0x08090a0b0c0d0e0f));
        proto_put_u8(&wr, 0xff);
        proto_put_u16(&wr, 0xfeff);
        proto_put_u32(&wr, 0xfdfcfbfau);
        cr_assert_eq(proto_wr_error(&wr), 0);
        assert_bytes(&wr, want, sizeof(want));
        proto_wr_free(&wr);
}

Test(proto_buf, wr_str_blob_layout) {
        static const uint8_t want[] = { 3, 'a', 'b', 'c', 0, 0, 0, 0, 3, 'x', 0, 'z', 0, 0, 0, 0 };
        struct proto_wr wr;

        proto_wr_init(&wr);
        proto_put_str(&wr, "abc");
        proto_put_str(&wr, "");
        proto_put_blob(&wr, "x\0z", 3);
        proto_put_blob(&wr, NULL, 0);
        proto_put_bytes(&wr, NULL, 0);
        cr_assert_eq(proto_wr_error(&wr), 0);
        assert_bytes(&wr, want, sizeof(want));
        proto_wr_free(&wr);
}

Test(proto_buf, wr_str_255_ok_256_refused) {
        char s[257];
        struct proto_wr wr;

        memset(s, 'n', 255);
        s[255] = 0;
        proto_wr_init(&wr);
        proto_put_str(&wr, s);
        cr_assert_eq(proto_wr_error(&wr), 0);
        cr_assert_eq(wr.len, 256);
        cr_assert_eq(wr.buf[0], 255);
        s[255] = 'n';
        s[256] = 0;
        proto_put_str(&wr, s);
        cr_assert_eq(proto_wr_error(&wr), -EMSGSIZE);
        cr_assert_eq(wr.len, 256, "a refused string must not write its length byte");
        proto_wr_free(&wr);
}

Test(proto_buf, wr_growth) {
        enum { N = 100000 };
        uint8_t *big = malloc(1 << 20);
        struct proto_wr wr;

        cr_assert_not_null(big);
        for (size_t i = 0; i < (1 << 20); i++)
                big[i] = (uint8_t)(i * 7);
        proto_wr_init(&wr);
        for (size_t i = 0; i < N; i++) {
                proto_put_u8(&wr, (uint8_t)i);
                cr_assert_geq(wr.cap, wr.len);
        }
        proto_put_bytes(&wr, big, 1 << 20);
        cr_assert_eq(proto_wr_error(&wr), 0);
        cr_assert_eq(wr.len, N + (1 << 20));
        cr_assert_geq(wr.cap, wr.len);
        for (size_t i = 0; i < N; i++)
                cr_assert_eq(wr.buf[i], (uint8_t)i, "byte %zu lost in a realloc", i);
        cr_assert_eq(memcmp(wr.buf + N, big, 1 << 20), 0);
        proto_wr_free(&wr);
        free(big);
}

Test(proto_buf, wr_reserve) {
        struct proto_wr wr;
        uint8_t *p;

        proto_wr_init(&wr);
        cr_assert_eq(proto_wr_reserve(&wr, 0), 0);
        cr_assert_eq(proto_wr_reserve(&wr, 5000), 0);
        cr_assert_geq(wr.cap, 5000);
        cr_assert_eq(wr.len, 0);
        p = wr.buf;
        for (int i = 0; i < 5000; i++)
                proto_put_u8(&wr, 1);
        cr_assert_eq(wr.buf, p, "reserved space was not used");
        proto_wr_free(&wr);
}

Test(proto_buf, wr_poke) {
        static const uint8_t want[] = { 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 0x11, 0x22, 0x33, 0x44 };
        struct proto_wr wr;

        proto_wr_init(&wr);
        proto_poke_u32(&wr, 0, 1);      /* nothing written yet: no-op */
        cr_assert_eq(wr.len, 0);
        proto_put_u32(&wr, 0);
        proto_put_u8(&wr, 0);
        proto_put_u32(&wr, 0);
        proto_put_u8(&wr, 0);
        proto_put_u8(&wr, 0);
        proto_poke_u32(&wr, 0, 0xaabbccdd);
        proto_poke_u32(&wr, 7, 0x11223344);     /* the last 4 bytes */
        assert_bytes(&wr, want, sizeof(want));
        /* Out of range: not a single byte changes, len stays. */
        proto_poke_u32(&wr, 8, 0xffffffff);
        proto_poke_u32(&wr, 11, 0xffffffff);
        proto_poke_u32(&wr, 1000, 0xffffffff);
        proto_poke_u32(&wr, SIZE_MAX - 1, 0xffffffff);
        proto_poke_u32(&wr, SIZE_MAX, 0xffffffff);
        assert_bytes(&wr, want, sizeof(want));
        cr_assert_eq(proto_wr_error(&wr), 0);
        proto_wr_free(&wr);
}

Test(proto_buf, wr_consume) {
        static const uint8_t rest[] = { 3, 4, 5, 6, 7, 8, 9, 0x77 };
        struct proto_wr wr;

        proto_wr_init(&wr);
        proto_wr_consume(&wr, 0);
        proto_wr_consume(&wr, 5);       /* empty, never allocated */
        cr_assert_eq(wr.len, 0);
        for (uint8_t i = 0; i < 10; i++)
                proto_put_u8(&wr, i);
        proto_wr_consume(&wr, 0);
        cr_assert_eq(wr.len, 10);
        proto_wr_consume(&wr, 3);
        proto_put_u8(&wr, 0x77);        /* appends after the kept bytes */
        assert_bytes(&wr, rest, sizeof(rest));
        proto_wr_consume(&wr, sizeof(rest));
        cr_assert_eq(wr.len, 0);
        proto_put_u8(&wr, 1);
        proto_wr_consume(&wr, 1000);
        cr_assert_eq(wr.len, 0);
        proto_wr_free(&wr);
}

/* After the first error every put is a no-op, the first error is the one
 * reported, and proto_wr_reset makes the writer usable again. */
static void assert_all_puts_noop(struct proto_wr *wr, int err) {
        size_t len = wr->len;
        char s256[257];

        memset(s256, 's', 256);
        s256[256] = 0;
        proto_put_u8(wr, 1);
        proto_put_u16(wr, 1);
        proto_put_u32(wr, 1);
        proto_put_u64(wr, 1);
        proto_put_bytes(wr, "abc", 3);
        proto_put_blob(wr, "abc", 3);
        proto_put_str(wr, "abc");
        proto_put_str(wr, s256);
        cr_assert_eq(wr->len, len, "a put after an error wrote");
        cr_assert_eq(proto_wr_error(wr), err, "the first error was replaced: %d, want %d",
                     proto_wr_error(wr), err);
        cr_assert_eq(proto_wr_reserve(wr, 1), err);
}

Test(proto_buf, wr_error_sticky) {
        char s256[257];
        struct proto_wr wr;
        uint8_t *buf;
        size_t cap;

        memset(s256, 's', 256);
        s256[256] = 0;
        proto_wr_init(&wr);
        proto_put_u32(&wr, 0x01020304);
        proto_put_str(&wr, s256);
        cr_assert_eq(proto_wr_error(&wr), -EMSGSIZE);
        cr_assert_eq(wr.len, 4);
        assert_all_puts_noop(&wr, -EMSGSIZE);
        proto_poke_u32(&wr, 0, 0);
        cr_assert_eq(wr.buf[0], 0x01, "poke after an error wrote");

        buf = wr.buf;
        cap = wr.cap;
        proto_wr_reset(&wr);
        cr_assert_eq(proto_wr_error(&wr), 0);
        cr_assert_eq(wr.len, 0);
        cr_assert_eq(wr.buf, buf, "reset must keep the buffer");
        cr_assert_eq(wr.cap, cap);
        proto_put_u16(&wr, 0xbeef);
        cr_assert_eq(wr.len, 2);
        proto_wr_free(&wr);
}

Test(proto_buf, wr_reserve_huge_is_enomem_and_sticky) {
        struct proto_wr wr;

        proto_wr_init(&wr);
        proto_put_u8(&wr, 9);
        cr_assert_eq(proto_wr_reserve(&wr, SIZE_MAX), -ENOMEM);
        cr_assert_eq(wr.len, 1);
        cr_assert_eq(wr.buf[0], 9);
        assert_all_puts_noop(&wr, -ENOMEM);
        proto_wr_free(&wr);
}

#if SIZE_MAX > UINT32_MAX
Test(proto_buf, wr_blob_over_u32) {
        static const uint8_t tiny[1] = { 0 };
        struct proto_wr wr;

        proto_wr_init(&wr);
        /* The length is refused before a single byte of tiny[] is read. */
        proto_put_blob(&wr, tiny, (size_t)UINT32_MAX + 1);
        cr_assert_eq(proto_wr_error(&wr), -EMSGSIZE);
        cr_assert_eq(wr.len, 0);
        assert_all_puts_noop(&wr, -EMSGSIZE);
        proto_wr_free(&wr);
}
#endif

Test(proto_buf, wr_rd_roundtrip) {
        static const uint64_t vals[] = { 0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff,
                                         0x7fffffff, 0x80000000u, 0xffffffffu, UINT64_C(0x100000000),
                                         UINT64_C(0x7fffffffffffffff), UINT64_C(0x8000000000000000),
                                         UINT64_MAX };
        const size_t nv = sizeof(vals) / sizeof(vals[0]);
        struct proto_wr wr;
        struct proto_rd rd;
        char s[OUT_SIZE];
        const uint8_t *p;
        size_t plen;

        proto_wr_init(&wr);
        for (size_t i = 0; i < nv; i++) {
                proto_put_u8(&wr, (uint8_t)vals[i]);
                proto_put_u16(&wr, (uint16_t)vals[i]);
                proto_put_u32(&wr, (uint32_t)vals[i]);
                proto_put_u64(&wr, vals[i]);
        }
        proto_put_str(&wr, "sess_x");
        proto_put_blob(&wr, "\0\1\2", 3);
        cr_assert_eq(proto_wr_error(&wr), 0);

        proto_rd_init(&rd, wr.buf, wr.len);
        for (size_t i = 0; i < nv; i++) {
                uint64_t v;

                cr_assert_eq(get_w(&rd, 1, &v), 0);
                cr_assert_eq(v, (uint8_t)vals[i]);
                cr_assert_eq(get_w(&rd, 2, &v), 0);
                cr_assert_eq(v, (uint16_t)vals[i]);
                cr_assert_eq(get_w(&rd, 4, &v), 0);
                cr_assert_eq(v, (uint32_t)vals[i]);
                cr_assert_eq(get_w(&rd, 8, &v), 0);
                cr_assert_eq(v, vals[i]);
        }
        cr_assert_eq(proto_get_str(&rd, 255, s), 0);
        cr_assert_str_eq(s, "sess_x");
        cr_assert_eq(proto_get_blob(&rd, 3, &p, &plen), 0);
        cr_assert_eq(plen, 3);
        cr_assert_eq(memcmp(p, "\0\1\2", 3), 0);
        cr_assert_eq(proto_rd_end(&rd), 0);
        proto_wr_free(&wr);
}
