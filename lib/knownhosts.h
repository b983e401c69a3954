/* known_hosts in OpenSSH's format, checked by our own parser
 * (docs/DESIGN.md "Peers and keys"). The parser reads from memory and does
 * no I/O, so it can be fuzzed; knownhosts_read() is the one function that
 * touches the disk.
 *
 * A line is `[@marker] patterns keytype base64-key [comment]`, blank or a
 * `#` comment. Patterns match as OpenSSH's match_hostname(): a comma-
 * separated list of `*`/`?` wildcards, any one negated with `!` (a negated
 * match rules the line out), case-insensitive; or one hashed name
 * `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` (ssh-keygen -H,
 * HashKnownHosts). The name looked up is OpenSSH's: `host` on port 22,
 * `[host]:port` on any other, so a bare `host` line never matches a
 * non-22 port. Keys are compared as raw SSH blobs.
 *
 * Markers: a key on an `@revoked` line is refused for every host, whatever
 * the line's patterns (stricter than OpenSSH, which applies it to the hosts
 * the line names). `@cert-authority` lines are never trusted: sessyncd
 * checks plain host keys only (libssh2 verifies no certificates); they are
 * reported, never silently skipped.
 */
#ifndef SESSYNC_LIB_KNOWNHOSTS_H
#define SESSYNC_LIB_KNOWNHOSTS_H

#include <stddef.h>
#include <stdint.h>

#define KNOWNHOSTS_MAX_FILE   (4u << 20)  /* a bigger file is refused: -EFBIG */
#define KNOWNHOSTS_MAX_LINE   65536u      /* a longer line is malformed */
#define KNOWNHOSTS_MAX_BLOB   8192u       /* decoded key; RSA-16384 is ~2.1 KiB */
#define KNOWNHOSTS_MAX_NAME   300u        /* "[" host(255) "]:" port, NUL */

/* Key types, as bits of knownhosts_result.types. */
enum {
        KNOWNHOSTS_ED25519 = 1 << 0,
        KNOWNHOSTS_ECDSA256 = 1 << 1,
        KNOWNHOSTS_ECDSA384 = 1 << 2,
        KNOWNHOSTS_ECDSA521 = 1 << 3,
        KNOWNHOSTS_RSA = 1 << 4,
        KNOWNHOSTS_DSS = 1 << 5,
};

enum knownhosts_verdict {
        KNOWNHOSTS_NOTFOUND,    /* no usable line names this host */
        KNOWNHOSTS_MATCH,       /* a line names this host with this key */
        KNOWNHOSTS_CHANGED,     /* lines name this host, none with this key */
        KNOWNHOSTS_REVOKED,     /* this key is on an @revoked line */
};

struct knownhosts_result {
        enum knownhosts_verdict verdict;
        unsigned line;          /* 1-based: the matching line (MATCH), the @revoked
                                 * line (REVOKED), the first line of this host with
                                 * another key (CHANGED); 0 for NOTFOUND */
        unsigned types;         /* KNOWNHOSTS_* of the lines naming this host */
        unsigned ca_line;       /* first @cert-authority line naming it, or 0 */
        unsigned bad_line;      /* first line naming it that cannot be used, or 0 */
        const char *bad_why;    /* why (static), when bad_line */
};

/* The name OpenSSH looks up for host:port, lowercased, into buf (size at
 * least KNOWNHOSTS_MAX_NAME). 0, or -ENAMETOOLONG / -EINVAL (empty host). */
int knownhosts_name(const char *host, unsigned port, char *buf, size_t size);

/* Look host:port up in text[0..len). key/key_len: the raw host key blob the
 * server presented, or NULL for "which types are known" only (verdict is
 * then NOTFOUND). *ret is written on success only. 0, -EFBIG (len over
 * KNOWNHOSTS_MAX_FILE), -ENAMETOOLONG / -EINVAL (host), -ENOMEM. */
int knownhosts_check(const void *text, size_t len, const char *host, unsigned port, const uint8_t *key,
                     size_t key_len, struct knownhosts_result *ret);

/* Call note(ctx, line, why) for every line that cannot be used as written:
 * malformed, an unknown marker, an unsupported key type, @cert-authority.
 * why is a static string. Returns the number of notes (>= 0) or -EFBIG. */
int knownhosts_scan(const void *text, size_t len, void (*note)(void *ctx, unsigned line, const char *why),
                    void *ctx);

/* ssh-keygen -l's fingerprint of a raw key blob, "SHA256:" and unpadded
 * base64, into buf (at least KNOWNHOSTS_FINGERPRINT bytes). 0, -ENOBUFS (buf
 * too small) or -EIO (libcrypto failed). */
#define KNOWNHOSTS_FINGERPRINT 52
int knownhosts_fingerprint(const uint8_t *blob, size_t len, char *buf, size_t size);

/* Read the file at path (a regular file, at most KNOWNHOSTS_MAX_FILE) into
 * a new buffer: *ret_text (caller frees) and *ret_len on success only.
 * 0 or a negative errno (-EFBIG if too large, -EINVAL if not a regular file). */
int knownhosts_read(const char *path, char **ret_text, size_t *ret_len);

#endif
