/* known_hosts parsing and lookup (docs/DESIGN.md "Peers and keys"). The
 * matching follows OpenSSH's hostfile.c and match.c: a line's fields are
 * split at spaces and tabs, patterns are matched case-insensitively with
 * `*` and `?`, a negated pattern that matches rules the line out, a hashed
 * name is compared as HMAC-SHA1 of the looked-up name under the line's
 * salt. Every byte of the file is read through a struct proto_rd. */
#include "lib/knownhosts.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/buf.h"

#define SHA1_LEN        20
#define SHA1_B64_LEN    28      /* base64 of 20 bytes, with one '=' */
#define MAX_SUBPATTERN  1023    /* OpenSSH's match_pattern_list: a longer one fails the list */
#define MAX_TYPE_NAME   64

enum marker { M_NONE, M_CA, M_REVOKED };
enum head { HEAD_OK, HEAD_BLANK, HEAD_BAD };
enum hostmatch { HM_NO, HM_YES, HM_NEGATED, HM_BAD };

struct field {
        const uint8_t *p;
        size_t len;
};

/* One line being read; pointers into the caller's text. */
struct line {
        struct proto_rd rd;             /* what is left of the line */
        size_t raw_len;                 /* the line as found, before any cut */
        enum marker marker;
        struct field hosts, type;
        unsigned type_bit;
        uint8_t blob[KNOWNHOSTS_MAX_BLOB + 3];  /* EVP_DecodeBlock writes the padding too */
        size_t blob_len;
};

static const struct {
        const char *name;
        unsigned bit;
} key_types[] = {
        { "ssh-ed25519", KNOWNHOSTS_ED25519 },
        { "ecdsa-sha2-nistp256", KNOWNHOSTS_ECDSA256 },
        { "ecdsa-sha2-nistp384", KNOWNHOSTS_ECDSA384 },
        { "ecdsa-sha2-nistp521", KNOWNHOSTS_ECDSA521 },
        { "ssh-rsa", KNOWNHOSTS_RSA },
        { "ssh-dss", KNOWNHOSTS_DSS },
};

static bool field_is(const struct field *f, const char *s) {
        size_t n = strlen(s);

        return f->len == n && memcmp(f->p, s, n) == 0;
}

static char lower(uint8_t c) {
        return (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

/* The next byte without consuming it, or -1 at the end. */
static int peek(const struct proto_rd *rd) {
        struct proto_rd c = *rd;
        uint8_t b;

        return proto_get_u8(&c, &b) < 0 ? -1 : b;
}

static void skip_ws(struct proto_rd *rd) {
        uint8_t b;

        while (peek(rd) == ' ' || peek(rd) == '\t')
                (void)proto_get_u8(rd, &b);
}

/* The bytes up to the next space, tab or the end. */
static void token(struct proto_rd *rd, struct field *f) {
        uint8_t b;
        int c;

        f->p = rd->p + rd->off;
        f->len = 0;
        while ((c = peek(rd)) >= 0 && c != ' ' && c != '\t') {
                (void)proto_get_u8(rd, &b);
                f->len++;
        }
}

/* The next line of text (without '\n', and without a '\r' before it, as
 * OpenSSH's base64 decoder skips it) into *line. false at the end. */
static bool next_line(struct proto_rd *text, struct line *l) {
        size_t left = proto_rd_left(text), n;
        const uint8_t *start = text->p + text->off, *nl;

        if (!left)
                return false;
        nl = memchr(start, '\n', left);
        n = nl ? (size_t)(nl - start) : left;
        text->off += nl ? n + 1 : n;
        l->raw_len = n;
        if (n && start[n - 1] == '\r')
                n--;
        proto_rd_init(&l->rd, start, n);
        return true;
}

/* Marker and host patterns. HEAD_BAD sets *why. */
static enum head parse_head(struct line *l, const char **why) {
        struct field m;
        int c;

        l->marker = M_NONE;
        l->hosts = (struct field){ NULL, 0 };
        if (l->raw_len > KNOWNHOSTS_MAX_LINE) {
                *why = "line longer than 64 KiB";
                return HEAD_BAD;
        }
        skip_ws(&l->rd);
        c = peek(&l->rd);
        if (c < 0 || c == '#')
                return HEAD_BLANK;
        if (memchr(l->rd.p, 0, l->rd.len)) {
                *why = "NUL byte in the line";
                return HEAD_BAD;
        }
        if (c == '@') {
                token(&l->rd, &m);
                if (field_is(&m, "@cert-authority")) {
                        l->marker = M_CA;
                } else if (field_is(&m, "@revoked")) {
                        l->marker = M_REVOKED;
                } else {
                        *why = "unknown marker (only @revoked and @cert-authority exist); the line is ignored";
                        return HEAD_BAD;
                }
                skip_ws(&l->rd);
        }
        token(&l->rd, &l->hosts);
        if (!l->hosts.len) {
                *why = "no host patterns after the marker";
                return HEAD_BAD;
        }
        return HEAD_OK;
}

/* Strict base64 (length a multiple of 4, padding only at the end), decoded
 * by libcrypto. 0, -EMSGSIZE (over max), -EBADMSG. */
static int b64_decode(const struct field *f, uint8_t *out, size_t max, size_t *ret_len) {
        size_t pad = 0;
        int n;

        if (!f->len || f->len % 4)
                return -EBADMSG;
        if (f->len / 4 * 3 > max + 2)
                return -EMSGSIZE;
        for (size_t i = 0; i < f->len; i++) {
                uint8_t c = f->p[i];
                bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                             c == '+' || c == '/';

                if (c == '=' && i + 2 >= f->len && (pad || i + 1 == f->len || f->p[i + 1] == '='))
                        pad++;
                else if (!alpha)
                        return -EBADMSG;
        }
        if (f->len / 4 * 3 - pad > max)
                return -EMSGSIZE;
        n = EVP_DecodeBlock(out, f->p, (int)f->len);
        if (n < 0 || (size_t)n < pad)
                return -EBADMSG;
        *ret_len = (size_t)n - pad;
        return 0;
}

/* Key type, key, optional comment. NULL, or why the line cannot be used. */
static const char *parse_key(struct line *l) {
        struct field key;
        struct proto_rd blob;
        const uint8_t *name;
        size_t name_len;
        int r;

        skip_ws(&l->rd);
        token(&l->rd, &l->type);
        if (!l->type.len || l->type.p[0] == '#')
                return "no key type after the host patterns";
        skip_ws(&l->rd);
        token(&l->rd, &key);
        if (!key.len)
                return "no key after the key type";
        if ((r = b64_decode(&key, l->blob, KNOWNHOSTS_MAX_BLOB, &l->blob_len)) < 0)
                return r == -EMSGSIZE ? "key longer than 8 KiB" : "the key is not valid base64";
        /* The blob names its own type (RFC 4253 6.6); it must be the line's. */
        proto_rd_init(&blob, l->blob, l->blob_len);
        if (proto_get_blob(&blob, MAX_TYPE_NAME, &name, &name_len) < 0 || name_len != l->type.len ||
            memcmp(name, l->type.p, name_len) != 0)
                return "the key is not of the type the line names";
        l->type_bit = 0;
        for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
                if (field_is(&l->type, key_types[i].name))
                        l->type_bit = key_types[i].bit;
        if (!l->type_bit)
                return "key type not supported (sessyncd checks plain ssh-ed25519, ecdsa-sha2-* and RSA host keys)";
        return NULL;
}

/* `|1|salt|hash`: the salt decoded (SHA1_LEN bytes) and the hash's text. */
static bool hashed_split(const struct field *h, uint8_t salt[SHA1_LEN + 3], struct field *hash) {
        const uint8_t *bar;
        struct field s;
        size_t n;

        if (h->len < 3 || memcmp(h->p, "|1|", 3) != 0)
                return false;
        bar = memchr(h->p + 3, '|', h->len - 3);
        if (!bar)
                return false;
        s = (struct field){ h->p + 3, (size_t)(bar - (h->p + 3)) };
        *hash = (struct field){ bar + 1, h->len - s.len - 4 };
        return b64_decode(&s, salt, SHA1_LEN, &n) == 0 && n == SHA1_LEN && hash->len == SHA1_B64_LEN;
}

static enum hostmatch hashed_match(const struct field *h, const char *name) {
        uint8_t salt[SHA1_LEN + 3], md[EVP_MAX_MD_SIZE];
        unsigned char b64[SHA1_B64_LEN + 1];
        unsigned md_len = 0;
        struct field hash;

        if (!hashed_split(h, salt, &hash))
                return HM_BAD;
        if (!HMAC(EVP_sha1(), salt, SHA1_LEN, (const unsigned char *)name, strlen(name), md, &md_len) ||
            md_len != SHA1_LEN)
                return HM_BAD;
        if (EVP_EncodeBlock(b64, md, SHA1_LEN) != SHA1_B64_LEN)
                return HM_BAD;
        return memcmp(b64, hash.p, SHA1_B64_LEN) == 0 ? HM_YES : HM_NO;
}

/* OpenSSH's match_pattern(), iteratively (a star backtracks to the last
 * one only), so a pattern of many stars costs O(len * len), not more. */
static bool glob(const uint8_t *p, size_t pn, const char *s, size_t sn) {
        size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

        while (si < sn) {
                if (pi < pn && p[pi] == '*') {
                        star = pi++;
                        mark = si;
                } else if (pi < pn && (p[pi] == '?' || lower(p[pi]) == s[si])) {
                        pi++;
                        si++;
                } else if (star != SIZE_MAX) {
                        pi = star + 1;
                        si = ++mark;
                } else {
                        return false;
                }
        }
        while (pi < pn && p[pi] == '*')
                pi++;
        return pi == pn;
}

/* OpenSSH's match_hostname() on a comma-separated list, or a hashed name. */
static enum hostmatch match_hosts(const struct field *hosts, const char *name) {
        size_t i = 0, sn = strlen(name);
        bool positive = false;

        if (hosts->p[0] == '|')
                return hashed_match(hosts, name);
        while (i <= hosts->len) {
                const uint8_t *sub = hosts->p + i, *comma = memchr(sub, ',', hosts->len - i);
                size_t len = comma ? (size_t)(comma - sub) : hosts->len - i;
                bool neg = len && sub[0] == '!';

                if (len > MAX_SUBPATTERN)
                        return HM_NO;
                if (glob(sub + neg, len - neg, name, sn)) {
                        if (neg)
                                return HM_NEGATED;
                        positive = true;
                }
                i += len + 1;
        }
        return positive ? HM_YES : HM_NO;
}

int knownhosts_name(const char *host, unsigned port, char *buf, size_t size) {
        int n;

        if (!host || !*host)
                return -EINVAL;
        /* OpenSSH's put_host_port(): the bare name only on the default port. */
        if (port == 0 || port == 22)
                n = snprintf(buf, size, "%s", host);
        else
                n = snprintf(buf, size, "[%s]:%u", host, port);
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        for (char *c = buf; *c; c++)
                *c = lower((uint8_t)*c);
        return 0;
}

int knownhosts_check(const void *text, size_t len, const char *host, unsigned port, const uint8_t *key,
                     size_t key_len, struct knownhosts_result *ret) {
        struct knownhosts_result res = { .verdict = KNOWNHOSTS_NOTFOUND };
        char name[KNOWNHOSTS_MAX_NAME];
        unsigned match = 0, other = 0, revoked = 0, no = 0;
        struct proto_rd rd;
        struct line *l = NULL;
        int r;

        if (len > KNOWNHOSTS_MAX_FILE)
                return -EFBIG;
        if ((r = knownhosts_name(host, port, name, sizeof(name))) < 0)
                return r;
        l = malloc(sizeof(*l));
        if (!l)
                return -ENOMEM;
        proto_rd_init(&rd, text, len);
        while (next_line(&rd, l)) {
                const char *why = NULL;
                enum hostmatch m;
                bool same;

                no++;
                if (parse_head(l, &why) != HEAD_OK)
                        continue;
                m = match_hosts(&l->hosts, name);
                /* A revoked key is refused for every host (knownhosts.h). */
                if (l->marker != M_REVOKED && m != HM_YES)
                        continue;
                if ((why = parse_key(l))) {
                        if (m == HM_YES && !res.bad_line) {
                                res.bad_line = no;
                                res.bad_why = why;
                        }
                        continue;
                }
                same = key && l->blob_len == key_len && memcmp(l->blob, key, key_len) == 0;
                if (l->marker == M_REVOKED) {
                        if (same && !revoked)
                                revoked = no;
                        continue;
                }
                if (l->marker == M_CA) {
                        if (!res.ca_line)
                                res.ca_line = no;
                        continue;
                }
                res.types |= l->type_bit;
                if (same && !match)
                        match = no;
                else if (!same && !other)
                        other = no;
        }
        free(l);
        if (key && revoked) {
                res.verdict = KNOWNHOSTS_REVOKED;
                res.line = revoked;
        } else if (key && match) {
                res.verdict = KNOWNHOSTS_MATCH;
                res.line = match;
        } else if (key && other) {
                res.verdict = KNOWNHOSTS_CHANGED;
                res.line = other;
        }
        *ret = res;
        return 0;
}

int knownhosts_scan(const void *text, size_t len, void (*note)(void *ctx, unsigned line, const char *why),
                    void *ctx) {
        struct proto_rd rd;
        struct line *l = NULL;
        unsigned no = 0;
        int notes = 0;

        if (len > KNOWNHOSTS_MAX_FILE)
                return -EFBIG;
        l = malloc(sizeof(*l));
        if (!l)
                return -ENOMEM;
        proto_rd_init(&rd, text, len);
        while (next_line(&rd, l)) {
                uint8_t salt[SHA1_LEN + 3];
                struct field hash;
                const char *why = NULL;
                enum head h;

                no++;
                h = parse_head(l, &why);
                if (h == HEAD_BLANK)
                        continue;
                if (h == HEAD_OK && l->hosts.p[0] == '|' && !hashed_split(&l->hosts, salt, &hash))
                        why = "malformed hashed host name (expected |1|salt|hash, as ssh-keygen -H writes)";
                else if (h == HEAD_OK)
                        why = parse_key(l);
                if (!why && l->marker == M_CA)
                        why = "@cert-authority: host certificates are not supported (libssh2 checks none); "
                              "the line is ignored, hosts it names need a plain key line";
                if (why) {
                        note(ctx, no, why);
                        notes++;
                }
        }
        free(l);
        return notes;
}

int knownhosts_fingerprint(const uint8_t *blob, size_t len, char *buf, size_t size) {
        unsigned char md[EVP_MAX_MD_SIZE], b64[48];
        unsigned md_len = 0;
        int n;

        if (size < KNOWNHOSTS_FINGERPRINT)
                return -ENOBUFS;
        if (!EVP_Digest(blob, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
                return -EIO;
        n = EVP_EncodeBlock(b64, md, 32);       /* 44 with one '=' */
        while (n > 0 && b64[n - 1] == '=')
                n--;
        snprintf(buf, size, "SHA256:%.*s", n, (const char *)b64);
        return 0;
}

int knownhosts_read(const char *path, char **ret_text, size_t *ret_len) {
        struct stat st;
        char *buf = NULL;
        size_t len = 0;
        ssize_t n;
        int fd, r;

        /* O_NONBLOCK: a FIFO put there must not hang the loop at open. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto out;
        }
        r = !S_ISREG(st.st_mode) ? -EINVAL : st.st_size > (off_t)KNOWNHOSTS_MAX_FILE ? -EFBIG : 0;
        if (r < 0)
                goto out;
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        /* What fstat saw: a line an editor appends meanwhile counts at the
         * next connect. */
        while (len < (size_t)st.st_size) {
                n = read(fd, buf + len, (size_t)st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        *ret_text = buf;
        *ret_len = len;
        buf = NULL;
        r = 0;
out:
        free(buf);
        close(fd);
        return r;
}
