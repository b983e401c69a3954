/* Benchmark for lib/delta.c: signature and delta sizes, and the time per
 * delta_sig_new / delta_make / delta_patch, for session-sized and larger
 * files with a small in-place change (the usual PHP rewrite) and a small
 * insertion (everything after it shifts), both at an offset that is not
 * block-aligned. Times are averages over as many
 * iterations as fit in about 0.2 s (at least 10), on CLOCK_MONOTONIC.
 * Prints one line per case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/delta.h"

#define MIN_ITERS 10
#define MIN_NS 200000000.0

static double now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

enum op { OP_SIG, OP_MAKE, OP_PATCH };

struct input {
        const uint8_t *basis, *newp, *delta;
        size_t blen, nlen, dlen;
        const struct delta_sig *sig;
};

/* One call of op; returns 0 or a negative errno. */
static int run_once(enum op op, const struct input *in) {
        struct delta_sig *sig = NULL;
        uint8_t *out = NULL;
        size_t len;
        int r;

        switch (op) {
        case OP_SIG:
                r = delta_sig_new(in->basis, in->blen, &sig);
                delta_sig_free(sig);
                return r;
        case OP_MAKE:
                r = delta_make(in->sig, in->newp, in->nlen, &out, &len);
                break;
        default:
                r = delta_patch(in->basis, in->blen, in->delta, in->dlen, in->nlen, &out, &len);
                break;
        }
        free(out);
        return r;
}

/* Average microseconds per call, or a negative value on error. */
static double time_us(enum op op, const struct input *in) {
        double start = now_ns(), el;
        long n = 0;

        do {
                if (run_once(op, in) < 0)
                        return -1;
                n++;
                el = now_ns() - start;
        } while (n < MIN_ITERS || el < MIN_NS);
        return el / (double)n / 1000.0;
}

static int bench_case(size_t size, int insert) {
        uint64_t s = 0x5e55 + size;
        uint8_t *basis = malloc(size), *newp = malloc(size + 16), *delta = NULL, *out = NULL;
        struct delta_sig *sig = NULL;
        struct input in = { 0 };
        /* Not on a block boundary, as a real edit usually is not. */
        size_t off = size / 3 + 5, nlen, dlen = 0, olen = 0;
        double sig_us, make_us, patch_us;
        int r = 1;

        if (!basis || !newp)
                goto out;
        /* Printable bytes, as in a serialized PHP session. */
        for (size_t i = 0; i < size; i++)
                basis[i] = (uint8_t)(' ' + rnd(&s) % 95);
        if (insert) {
                memcpy(newp, basis, off);
                memset(newp + off, 'I', 16);
                memcpy(newp + off + 16, basis + off, size - off);
                nlen = size + 16;
        } else {
                memcpy(newp, basis, size);
                memcpy(newp + off, "CHANGED!", 8);
                nlen = size;
        }
        if (delta_sig_new(basis, size, &sig) < 0 || delta_make(sig, newp, nlen, &delta, &dlen) < 0 ||
            delta_patch(basis, size, delta, dlen, nlen, &out, &olen) < 0 || olen != nlen ||
            memcmp(out, newp, nlen) != 0) {
                fprintf(stderr, "bench_delta: roundtrip failed for %zu bytes\n", size);
                goto out;
        }
        in = (struct input){ .basis = basis, .blen = size, .newp = newp, .nlen = nlen,
                             .delta = delta, .dlen = dlen, .sig = sig };
        sig_us = time_us(OP_SIG, &in);
        make_us = time_us(OP_MAKE, &in);
        patch_us = time_us(OP_PATCH, &in);
        if (sig_us < 0 || make_us < 0 || patch_us < 0) {
                fprintf(stderr, "bench_delta: call failed for %zu bytes\n", size);
                goto out;
        }
        printf("%-7s %8zu B  sig %6zu B (%4.1f%%)  delta %6zu B  sig_new %9.1f us  make %9.1f us  patch %8.1f us\n",
               insert ? "insert" : "change", size, delta_sig_size(sig), 100.0 * (double)delta_sig_size(sig) / (double)size,
               dlen, sig_us, make_us, patch_us);
        r = 0;
out:
        delta_sig_free(sig);
        free(basis);
        free(newp);
        free(delta);
        free(out);
        return r;
}

int main(void) {
        static const size_t sizes[] = { 1024, 8192, 65536, 1 << 20 };

        printf("bench_delta: 8-byte overwrite (change) or 16-byte insertion (insert) at a third of the file\n");
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
                for (int insert = 0; insert < 2; insert++)
                        if (bench_case(sizes[i], insert) != 0)
                                return 1;
        return 0;
}
