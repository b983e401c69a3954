/* librsync deltas, entirely in memory (docs/DESIGN.md "Deltas"). See delta.h.
 *
 * Every operation is one rs_job_t fed the whole input at once (eof_in set)
 * and drained into a growing heap buffer; no FILE*, no temp files. We call
 * nothing global in librsync (rs_trace_*), so its error messages go to
 * stderr at its default level; the caller decides what to log.
 *
 * librsync aborts the process (rs_fatal) when one of its own allocations
 * fails; there is no way to turn that into -ENOMEM from outside. Our own
 * allocations do return -ENOMEM.
 */
#include "lib/delta.h"

#include <errno.h>
#include <librsync.h>
#include <stdlib.h>
#include <string.h>

/* Signature parameters. A session file is a few KB and a PHP request
 * typically rewrites a few bytes in place, so blocks stay small:
 * block_len = clamp(next power of two >= sqrt(len), 64, 2048) gives 128-byte
 * blocks for 8 KB (a one-byte change costs about one block of literal) and
 * keeps the signature near 12 / block_len of the file. Strong sums are cut to
 * 8 bytes: the patched result is checked by a 64-bit content hash anyway, and
 * a collision only costs a whole-file resend. */
#define DELTA_BLOCK_MIN 64
#define DELTA_BLOCK_MAX 2048
#define DELTA_STRONG_LEN 8
#define DELTA_SIG_HEADER 12 /* magic, block_len, strong_len: 3 x be32 */

/* The signature is kept serialized: 12 + 12 bytes per block. A loaded
 * rs_signature_t costs 36 bytes per block (strong sums are stored at their
 * maximum width) plus a hash table, i.e. three to four times more, for every
 * file the sender tracks. Loading and indexing per delta_make is cheap next
 * to the rolling-checksum scan itself (measured: ~1.8 us of ~18 us for
 * delta_make at 8 KB, ~25 us of ~2 ms at 1 MB), so we do not cache it. */
struct delta_sig {
        size_t len;
        uint8_t *data;
};

/* A growing output buffer that refuses to hold more than max bytes. */
struct outbuf {
        uint8_t *p;
        size_t len;
        size_t cap;
        size_t max;
};

/* What the patch copy callback may read: the basis, nothing else. */
struct basis {
        const uint8_t *p;
        size_t len;
};

static int errno_from_rs(rs_result res) {
        switch (res) {
        case RS_MEM_ERROR:
                return -ENOMEM;
        case RS_PARAM_ERROR:
                return -EINVAL;
        default:
                /* RS_INPUT_ENDED, RS_CORRUPT, RS_BAD_MAGIC, and
                 * RS_INTERNAL_ERROR ("job made no progress", which a
                 * garbage delta can provoke) all mean bad input. */
                return -EBADMSG;
        }
}

/* Make room for at least one more byte. Returns 0, -ENOMEM, or -EFBIG when
 * the buffer already holds max bytes. */
static int outbuf_grow(struct outbuf *o) {
        size_t cap;
        uint8_t *p;

        if (o->len < o->cap)
                return 0;
        if (o->cap >= o->max)
                return -EFBIG;
        cap = o->cap < 128 ? 256 : o->cap > SIZE_MAX / 2 ? SIZE_MAX : o->cap * 2;
        if (cap > o->max)
                cap = o->max;
        p = realloc(o->p, cap);
        if (!p)
                return -ENOMEM;
        o->p = p;
        o->cap = cap;
        return 0;
}

/* Run job over in[0..in_len) to completion, appending its output to o (which
 * may be NULL for a job that produces none, i.e. loadsig). Input left over
 * after the job finished is an error (-EBADMSG): a delta ends with its END
 * command. Returns 0 or a negative errno; o keeps what was produced. */
static int run_job(rs_job_t *job, const void *in, size_t in_len, struct outbuf *o) {
        /* librsync never writes through next_in; its type is just not const. */
        rs_buffers_t b = { .next_in = (char *)in, .avail_in = in_len, .eof_in = 1 };
        rs_result res;
        int r;

        for (;;) {
                size_t in_before = b.avail_in, out_room = 0;

                if (o) {
                        r = outbuf_grow(o);
                        if (r < 0)
                                return r;
                        out_room = o->cap - o->len;
                        b.next_out = (char *)o->p + o->len;
                }
                b.avail_out = out_room;
                res = rs_job_iter(job, &b);
                if (o)
                        o->len += out_room - b.avail_out;
                if (res == RS_DONE)
                        break;
                if (res != RS_BLOCKED)
                        return errno_from_rs(res);
                /* Blocked with output room left and no input consumed: all
                 * input was given (eof_in), so the job is waiting for bytes
                 * that will never come. rs_job_iter only catches this when
                 * avail_in is non-zero, so guard against spinning here. */
                if (b.avail_out == out_room && b.avail_in == in_before)
                        return -EBADMSG;
        }
        return b.avail_in ? -EBADMSG : 0;
}

static size_t block_len_for(size_t len) {
        size_t bl = DELTA_BLOCK_MIN;

        /* Stop at the first power of two whose square reaches len, i.e. the
         * next power of two >= sqrt(len), without floating point. */
        while (bl < DELTA_BLOCK_MAX && bl * bl < len)
                bl <<= 1;
        return bl;
}

int delta_sig_new(const void *basis, size_t len, struct delta_sig **ret) {
        struct outbuf o = { .max = SIZE_MAX };
        struct delta_sig *sig = NULL;
        rs_job_t *job = NULL;
        size_t bl = block_len_for(len), nblocks = len / bl + (len % bl != 0);
        int r;

        /* The exact size is known, so allocate it once (4-byte weak sum plus
         * strong sum per block); a block count this large cannot be. */
        if (nblocks > (SIZE_MAX - DELTA_SIG_HEADER) / (4 + DELTA_STRONG_LEN)) {
                r = -EFBIG;
                goto out;
        }
        o.cap = DELTA_SIG_HEADER + nblocks * (4 + DELTA_STRONG_LEN);
        o.p = malloc(o.cap);
        sig = calloc(1, sizeof(*sig));
        job = rs_sig_begin(bl, DELTA_STRONG_LEN, RS_RK_BLAKE2_SIG_MAGIC);
        if (!o.p || !sig || !job) {
                r = -ENOMEM;
                goto out;
        }
        r = run_job(job, basis, len, &o);
        if (r < 0)
                goto out;
        sig->data = o.p;
        sig->len = o.len;
        o.p = NULL;
        *ret = sig;
        sig = NULL;
        r = 0;
out:
        if (job)
                (void)rs_job_free(job);
        free(o.p);
        delta_sig_free(sig);
        return r;
}

void delta_sig_free(struct delta_sig *sig) {
        if (!sig)
                return;
        free(sig->data);
        free(sig);
}

size_t delta_sig_size(const struct delta_sig *sig) {
        return sizeof(*sig) + sig->len;
}

int delta_make(const struct delta_sig *sig, const void *newdata, size_t len, uint8_t **ret_delta,
               size_t *ret_len) {
        struct outbuf o = { .max = SIZE_MAX };
        rs_signature_t *rsig = NULL;
        rs_job_t *job = NULL;
        rs_result res;
        int r;

        /* rs_loadsig_begin sets rsig at once and the job does not own it,
         * so rsig is freed below on every path. */
        job = rs_loadsig_begin(&rsig);
        if (!job || !rsig) {
                r = -ENOMEM;
                goto out;
        }
        r = run_job(job, sig->data, sig->len, NULL);
        if (r < 0)
                goto out;
        (void)rs_job_free(job);
        job = NULL;
        res = rs_build_hash_table(rsig);
        if (res != RS_DONE) {
                r = errno_from_rs(res);
                goto out;
        }
        job = rs_delta_begin(rsig);
        if (!job) {
                r = -ENOMEM;
                goto out;
        }
        r = run_job(job, newdata, len, &o);
        if (r < 0)
                goto out;
        *ret_delta = o.p;
        *ret_len = o.len;
        o.p = NULL;
        r = 0;
out:
        if (job)
                (void)rs_job_free(job);
        if (rsig)
                rs_free_sumset(rsig);
        free(o.p);
        return r;
}

/* rs_copy_cb for the patch job: hand out basis[pos..pos+*len). librsync asks
 * for at most the free output space, never 0 bytes, but the position and
 * length come from the delta, which is untrusted: any byte outside the basis
 * ends the patch (RS_INPUT_ENDED, mapped to -EBADMSG). */
static rs_result basis_copy(void *opaque, rs_long_t pos, size_t *len, void **buf) {
        const struct basis *b = opaque;

        if (pos < 0 || (uint64_t)pos > b->len || *len > b->len - (size_t)pos)
                return RS_INPUT_ENDED;
        memcpy(*buf, b->p + pos, *len);
        return RS_DONE;
}

int delta_patch(const void *basis, size_t basis_len, const void *delta, size_t delta_len, size_t max_out,
                uint8_t **ret_out, size_t *ret_len) {
        struct basis b = { .p = basis, .len = basis_len };
        /* Room for one byte past max_out: producing it is how we learn that
         * the result is too large, as soon as it happens. */
        struct outbuf o = { .max = max_out == SIZE_MAX ? SIZE_MAX : max_out + 1 };
        rs_job_t *job = NULL;
        int r;

        /* The result is usually about as long as the basis; start there
         * (never beyond the cap) to avoid most reallocations. */
        o.cap = basis_len > SIZE_MAX - delta_len ? SIZE_MAX : basis_len + delta_len;
        if (o.cap > o.max)
                o.cap = o.max;
        o.p = o.cap ? malloc(o.cap) : NULL;
        job = rs_patch_begin(basis_copy, &b);
        if ((o.cap && !o.p) || !job) {
                r = -ENOMEM;
                goto out;
        }
        r = run_job(job, delta, delta_len, &o);
        if (r == 0 && o.len > max_out)
                r = -EFBIG;
        if (r < 0)
                goto out;
        if (o.len == 0) {
                free(o.p);
                o.p = NULL;
        }
        *ret_out = o.p;
        *ret_len = o.len;
        o.p = NULL;
        r = 0;
out:
        if (job)
                (void)rs_job_free(job);
        free(o.p);
        return r;
}
