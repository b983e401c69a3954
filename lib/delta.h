/* librsync deltas, entirely in memory (docs/DESIGN.md "Deltas").
 *
 * The sender keeps, per file, the signature of the version the peers last
 * acknowledged (struct delta_sig) instead of the bytes, so memory per file is
 * a small fraction of its size (about 12 bytes per block: ~10% at 8 KB,
 * ~5% at 64 KB, ~1% at 1 MB). The receiver patches its current file with the
 * delta. Correctness never rests on this module: both sides verify the
 * result by xxh3 hash, and a mismatch falls back to the whole file.
 *
 * Errors: negative errno. -ENOMEM, -EBADMSG (a delta librsync rejects,
 * including one that reads past the basis or has bytes after its end),
 * -EFBIG (the result would be larger than max_out). On failure the ret_
 * out-params are left untouched.
 */
#ifndef SESSYNC_LIB_DELTA_H
#define SESSYNC_LIB_DELTA_H

#include <stddef.h>
#include <stdint.h>

struct delta_sig;

/* Compute the signature of basis[0..len). *ret is new (delta_sig_free). */
int delta_sig_new(const void *basis, size_t len, struct delta_sig **ret);
void delta_sig_free(struct delta_sig *sig);

/* Bytes the signature holds: the serialized librsync signature plus the
 * struct (for memory accounting and benchmarks). */
size_t delta_sig_size(const struct delta_sig *sig);

/* Encode newdata[0..len) as a delta against sig's basis. *ret_delta is a new
 * malloc'd buffer (free) of *ret_len bytes. */
int delta_make(const struct delta_sig *sig, const void *newdata, size_t len, uint8_t **ret_delta,
               size_t *ret_len);

/* Apply delta to basis. The result may not exceed max_out bytes (-EFBIG): a
 * hostile delta cannot make us allocate without bound. *ret_out is new
 * (free); it may be NULL when *ret_len is 0. */
int delta_patch(const void *basis, size_t basis_len, const void *delta, size_t delta_len, size_t max_out,
                uint8_t **ret_out, size_t *ret_len);

#endif
