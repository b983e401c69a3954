/* lib/knownhosts: OpenSSH's known_hosts format and matching, field by
 * field (exact, truncated, huge, trailing bytes), with vectors made by
 * OpenSSH 9.2's ssh-keygen (-H hashing, -l fingerprints). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/knownhosts.h"

#define KEY_A "AAAAC3NzaC1lZDI1NTE5AAAAIIBew7OSGtfqDnDZI4Lvru6KaTlQTsvgRSpnmU4ak5t0"
#define KEY_B "AAAAC3NzaC1lZDI1NTE5AAAAIBdIC+7rp6jQt13Znv2csQ32ibeKXPJtVWzYyhHG/CGX"
#define KEY_E "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEVLtcqWiQt83TxgG/CpXanbrEYrMxUNBAH9Lt146B/fIKT7Jh/OVqeLvscNNMarcKae7y6s904a8IVtRprldIU="
#define FP_A "SHA256:JG3BxuMdyKEZrl3g4yYmbYx5f/spwNPwU80f9lfhbeE"
/* ssh-keygen -H of "[127.0.0.1]:2222" and "web1.example", key A. */
#define HASH_PORT "|1|rCvvkHpDDJvcKO7EPhmlTJONCOo=|oh8pvrez3JDrVYDSMmimV4vhtps="
#define HASH_WEB1 "|1|we+mQZGVxM3r2iDjbyX/XPK/rck=|rjhsyJYmCiXRK4mggKd5FvnPkog="

static uint8_t blob_a[64], blob_b[64], blob_e[128];
static size_t len_a, len_b, len_e;

static size_t b64(const char *s, uint8_t *out) {
        size_t n = strlen(s), pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
        int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);

        cr_assert(r > 0);
        return (size_t)r - pad;
}

static void setup(void) {
        len_a = b64(KEY_A, blob_a);
        len_b = b64(KEY_B, blob_b);
        len_e = b64(KEY_E, blob_e);
}

TestSuite(knownhosts, .init = setup);

/* Look host:port up in text, presenting blob (NULL: types only). */
static struct knownhosts_result look(const char *text, const char *host, unsigned port, const uint8_t *blob,
                                     size_t len) {
        struct knownhosts_result res;

        memset(&res, 0x5a, sizeof(res));
        cr_assert_eq(knownhosts_check(text, strlen(text), host, port, blob, len, &res), 0, "%s", text);
        return res;
}

static struct knownhosts_result look_a(const char *text, const char *host, unsigned port) {
        return look(text, host, port, blob_a, len_a);
}

#define VERDICT(res, v, l)                                                                                 \
        do {                                                                                               \
                cr_assert_eq((res).verdict, (v), "verdict %d, want %d", (int)(res).verdict, (int)(v));     \
                cr_assert_eq((res).line, (l), "line %u, want %u", (res).line, (unsigned)(l));              \
        } while (0)

static unsigned notes, note_line[16];
static const char *note_why[16];

static void note(void *ctx, unsigned line, const char *why) {
        (void)ctx;
        if (notes < 16) {
                note_line[notes] = line;
                note_why[notes] = why;
        }
        notes++;
}

static int scan(const char *text) {
        notes = 0;
        return knownhosts_scan(text, strlen(text), note, NULL);
}

Test(knownhosts, name_is_openssh_put_host_port) {
        char buf[KNOWNHOSTS_MAX_NAME], big[400];

        cr_assert_eq(knownhosts_name("Web1.Example", 22, buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "web1.example");
        cr_assert_eq(knownhosts_name("127.0.0.1", 2222, buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "[127.0.0.1]:2222");
        cr_assert_eq(knownhosts_name("fe80::1%eth0", 65535, buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "[fe80::1%eth0]:65535");
        cr_assert_eq(knownhosts_name("h", 0, buf, sizeof(buf)), 0);
        cr_assert_str_eq(buf, "h");
        cr_assert_eq(knownhosts_name("", 22, buf, sizeof(buf)), -EINVAL);
        memset(big, 'a', 296);
        big[296] = 0;   /* "[" 296 "]:2222" is 303 */
        cr_assert_eq(knownhosts_name(big, 2222, buf, sizeof(buf)), -ENAMETOOLONG);
        cr_assert_eq(knownhosts_name(big, 22, buf, sizeof(buf)), 0);
        big[299] = 0;
        memset(big, 'a', 299);
        cr_assert_eq(knownhosts_name(big, 22, buf, sizeof(buf)), 0);
        memset(big, 'a', 300);
        big[300] = 0;
        cr_assert_eq(knownhosts_name(big, 22, buf, sizeof(buf)), -ENAMETOOLONG);
}

Test(knownhosts, exact_bracketed_line) {
        struct knownhosts_result r = look_a("[127.0.0.1]:2222 ssh-ed25519 " KEY_A "\n", "127.0.0.1", 2222);

        VERDICT(r, KNOWNHOSTS_MATCH, 1);
        cr_assert_eq(r.types, KNOWNHOSTS_ED25519);
        cr_assert_eq(r.ca_line, 0);
        cr_assert_eq(r.bad_line, 0);
}

Test(knownhosts, bare_host_only_on_port_22) {
        const char *bare = "127.0.0.1 ssh-ed25519 " KEY_A "\n";
        const char *port = "[127.0.0.1]:2222 ssh-ed25519 " KEY_A "\n";

        VERDICT(look_a(bare, "127.0.0.1", 2222), KNOWNHOSTS_NOTFOUND, 0);
        cr_assert_eq(look_a(bare, "127.0.0.1", 2222).types, 0);
        VERDICT(look_a(bare, "127.0.0.1", 22), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a(port, "127.0.0.1", 22), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a(port, "127.0.0.1", 2223), KNOWNHOSTS_NOTFOUND, 0);
        /* "[127.0.0.1]:22" is not how OpenSSH names port 22 */
        VERDICT(look_a("[127.0.0.1]:22 ssh-ed25519 " KEY_A, "127.0.0.1", 22), KNOWNHOSTS_NOTFOUND, 0);
}

Test(knownhosts, patterns_lists_wildcards_case) {
        VERDICT(look_a("a,b,[127.0.0.1]:2222,c ssh-ed25519 " KEY_A, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("[127.0.0.*]:2222 ssh-ed25519 " KEY_A, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("[127.0.0.1]:* ssh-ed25519 " KEY_A, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("[127.0.0.?]:222? ssh-ed25519 " KEY_A, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("* ssh-ed25519 " KEY_A, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("*.example ssh-ed25519 " KEY_A, "web1.example", 22), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("*.example ssh-ed25519 " KEY_A, "web1.example", 2222), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a("WEB1.Example ssh-ed25519 " KEY_A, "web1.EXAMPLE", 22), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("web1.exampl ssh-ed25519 " KEY_A, "web1.example", 22), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a("web1.example.org ssh-ed25519 " KEY_A, "web1.example", 22), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a("web?.example ssh-ed25519 " KEY_A, "web.example", 22), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a("*a*a*a*a*a*a*a*a*a*a*a*a*b ssh-ed25519 " KEY_A, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 22),
                KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a(",, ssh-ed25519 " KEY_A, "h", 22), KNOWNHOSTS_NOTFOUND, 0);
}

Test(knownhosts, negation_rules_the_line_out) {
        const char *neg = "*,![127.0.0.1]:2222 ssh-ed25519 " KEY_A "\n";

        VERDICT(look_a(neg, "127.0.0.1", 2222), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a(neg, "127.0.0.2", 2222), KNOWNHOSTS_MATCH, 1);
        /* negated first, positive after: still out */
        VERDICT(look_a("![127.0.0.1]:2222,* ssh-ed25519 " KEY_A, "127.0.0.1", 2222), KNOWNHOSTS_NOTFOUND, 0);
        /* a negation alone matches nothing */
        VERDICT(look_a("!other ssh-ed25519 " KEY_A, "127.0.0.1", 22), KNOWNHOSTS_NOTFOUND, 0);
        /* only that line: the next one still counts */
        VERDICT(look_a("*,!h ssh-ed25519 " KEY_B "\nh ssh-ed25519 " KEY_A "\n", "h", 22), KNOWNHOSTS_MATCH, 2);
}

Test(knownhosts, hashed_names_from_ssh_keygen) {
        const char *text = HASH_PORT " ssh-ed25519 " KEY_A "\n" HASH_WEB1 " ssh-ed25519 " KEY_A "\n";

        VERDICT(look_a(text, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a(text, "web1.example", 22), KNOWNHOSTS_MATCH, 2);
        VERDICT(look_a(text, "WEB1.example", 22), KNOWNHOSTS_MATCH, 2);   /* hashed lowercase */
        VERDICT(look_a(text, "127.0.0.1", 22), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a(text, "web1.example", 2222), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look(text, "127.0.0.1", 2222, blob_b, len_b), KNOWNHOSTS_CHANGED, 1);
}

Test(knownhosts, hashed_names_malformed) {
        static const char *const bad[] = {
                "|1|rCvvkHpDDJvcKO7EPhmlTJONCOo=|oh8pvrez3JDrVYDSMmimV4vhtps ssh-ed25519 " KEY_A, /* hash short */
                "|1|rCvvkHpDDJvcKO7EPhmlTJONCOo=|oh8pvrez3JDrVYDSMmimV4vhtps== ssh-ed25519 " KEY_A,
                "|1|rCvvkHpDDJvcKO7EPhmlTJONCO==|oh8pvrez3JDrVYDSMmimV4vhtps= ssh-ed25519 " KEY_A, /* salt 19 */
                "|1|rCvvkHpDDJvcKO7EPhmlTJONCOo=oh8pvrez3JDrVYDSMmimV4vhtps= ssh-ed25519 " KEY_A,  /* one bar */
                "|2|rCvvkHpDDJvcKO7EPhmlTJONCOo=|oh8pvrez3JDrVYDSMmimV4vhtps= ssh-ed25519 " KEY_A,
                "|1| ssh-ed25519 " KEY_A,
                "| ssh-ed25519 " KEY_A,
                "|1|rCvvkHpDDJvcKO7EPhmlTJONCOo=| ssh-ed25519 " KEY_A,
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                VERDICT(look_a(bad[i], "127.0.0.1", 2222), KNOWNHOSTS_NOTFOUND, 0);
                cr_assert_eq(scan(bad[i]), 1, "%s", bad[i]);
        }
}

Test(knownhosts, scan_reports_malformed_hashed) {
        cr_assert_eq(scan("|1|xx|yy ssh-ed25519 " KEY_A "\n" HASH_PORT " ssh-ed25519 " KEY_A "\n"), 1);
        cr_assert_eq(note_line[0], 1);
        cr_assert(strstr(note_why[0], "hashed"));
}

Test(knownhosts, changed_and_several_lines) {
        const char *text = "h ssh-ed25519 " KEY_B "\nh ecdsa-sha2-nistp256 " KEY_E "\nh ssh-ed25519 " KEY_A "\n";
        struct knownhosts_result r;

        VERDICT(look_a("h ssh-ed25519 " KEY_B, "h", 22), KNOWNHOSTS_CHANGED, 1);
        r = look_a(text, "h", 22);
        VERDICT(r, KNOWNHOSTS_MATCH, 3);
        cr_assert_eq(r.types, KNOWNHOSTS_ED25519 | KNOWNHOSTS_ECDSA256);
        r = look(text, "h", 22, NULL, 0);
        VERDICT(r, KNOWNHOSTS_NOTFOUND, 0);
        cr_assert_eq(r.types, KNOWNHOSTS_ED25519 | KNOWNHOSTS_ECDSA256);
        VERDICT(look(text, "h", 22, blob_e, len_e), KNOWNHOSTS_MATCH, 2);
        VERDICT(look_a("other ssh-ed25519 " KEY_A "\nh ssh-ed25519 " KEY_B "\n", "h", 22), KNOWNHOSTS_CHANGED, 2);
        /* a blob one byte short or long is another key */
        VERDICT(look("h ssh-ed25519 " KEY_A, "h", 22, blob_a, len_a - 1), KNOWNHOSTS_CHANGED, 1);
        VERDICT(look("h ssh-ed25519 " KEY_A, "h", 22, blob_a, len_a + 1), KNOWNHOSTS_CHANGED, 1);
}

Test(knownhosts, revoked_for_every_host) {
        const char *good = "[127.0.0.1]:2222 ssh-ed25519 " KEY_A "\n";
        char text[1024];

        snprintf(text, sizeof(text), "%s@revoked * ssh-ed25519 %s\n", good, KEY_A);
        VERDICT(look_a(text, "127.0.0.1", 2222), KNOWNHOSTS_REVOKED, 2);
        snprintf(text, sizeof(text), "@revoked\tsomewhere.else ssh-ed25519 %s\n%s", KEY_A, good);
        VERDICT(look_a(text, "127.0.0.1", 2222), KNOWNHOSTS_REVOKED, 1);
        /* another key revoked: ours still matches */
        snprintf(text, sizeof(text), "@revoked * ssh-ed25519 %s\n%s", KEY_B, good);
        VERDICT(look_a(text, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 2);
        /* a revoked line vouches for nothing */
        VERDICT(look_a("@revoked * ssh-ed25519 " KEY_B, "h", 22), KNOWNHOSTS_NOTFOUND, 0);
        cr_assert_eq(look_a("@revoked * ssh-ed25519 " KEY_B, "h", 22).types, 0);
        /* the marker is exact */
        VERDICT(look_a("@revokedx * ssh-ed25519 " KEY_A "\n* ssh-ed25519 " KEY_A, "h", 22), KNOWNHOSTS_MATCH, 2);
        VERDICT(look_a("@revoke * ssh-ed25519 " KEY_A, "h", 22), KNOWNHOSTS_NOTFOUND, 0);
        VERDICT(look_a("@Revoked * ssh-ed25519 " KEY_A, "h", 22), KNOWNHOSTS_NOTFOUND, 0);
}

Test(knownhosts, cert_authority_never_trusted_always_reported) {
        struct knownhosts_result r = look_a("@cert-authority * ssh-ed25519 " KEY_A "\n", "h", 22);

        VERDICT(r, KNOWNHOSTS_NOTFOUND, 0);
        cr_assert_eq(r.ca_line, 1);
        cr_assert_eq(r.types, 0);
        r = look_a("@cert-authority other ssh-ed25519 " KEY_A "\n", "h", 22);
        cr_assert_eq(r.ca_line, 0);
        cr_assert_eq(scan("# ok\nh ssh-ed25519 " KEY_A "\n@cert-authority *.example ssh-ed25519 " KEY_A "\n"), 1);
        cr_assert_eq(note_line[0], 3);
        cr_assert(strstr(note_why[0], "@cert-authority"));
}

Test(knownhosts, blank_comments_whitespace_crlf) {
        const char *text = "\n# [127.0.0.1]:2222 ssh-ed25519 " KEY_B "\n   \t\n  #x\n"
                           " \t[127.0.0.1]:2222\t \tssh-ed25519  " KEY_A "\t comment with spaces\r\n";

        VERDICT(look_a(text, "127.0.0.1", 2222), KNOWNHOSTS_MATCH, 5);
        cr_assert_eq(scan(text), 0);
        VERDICT(look_a("h ssh-ed25519 " KEY_A "\r\n", "h", 22), KNOWNHOSTS_MATCH, 1);
        VERDICT(look_a("h ssh-ed25519 " KEY_A, "h", 22), KNOWNHOSTS_MATCH, 1);   /* no final newline */
        VERDICT(look_a("", "h", 22), KNOWNHOSTS_NOTFOUND, 0);
        cr_assert_eq(scan(""), 0);
}

/* Each field cut short, and bytes after it: the line is unusable,
 * reported by scan, and named in bad_line when it names the host. */
Test(knownhosts, truncated_and_trailing) {
        static const struct {
                const char *text;
                const char *why;
        } cases[] = {
                { "h", "no key type" },
                { "h ", "no key type" },
                { "h #ssh-ed25519 " KEY_A, "no key type" },
                { "h ssh-ed25519", "no key after" },
                { "h ssh-ed25519 \t", "no key after" },
                { "h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIBew7OSGtfqDnDZI4Lvru6KaTlQTsvgRSpnmU4ak5t", "base64" },
                { "h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIBew7OSGtfqDnDZI4Lvru6KaTlQTsvgRSpnmU4ak5t0x", "base64" },
                { "h ssh-ed25519 " KEY_A "=", "base64" },
                { "h ssh-ed25519 " KEY_A "====", "base64" },
                { "h ssh-ed25519 AAAA=AAA", "base64" },
                { "h ssh-ed25519 AAA*", "base64" },
                { "h ssh-ed25519 AAAA", "type" },                  /* blob too short for its type */
                { "h ssh-ed25519 AAAAC3Nz", "type" },              /* type length runs past the blob */
                { "h ecdsa-sha2-nistp256 " KEY_A, "type" },        /* blob says ssh-ed25519 */
                { "h ssh-ed25519x " KEY_A, "type" },
                { "h ecdsa-sha2-nistp384 " KEY_E, "type" },        /* same length, a nistp256 blob */
                { "h sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t", "not supported" },
                { "@revoked", "no host patterns" },
                { "@revoked  ", "no host patterns" },
                { "@bogus h ssh-ed25519 " KEY_A, "unknown marker" },
                { "@ h ssh-ed25519 " KEY_A, "unknown marker" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct knownhosts_result r = look_a(cases[i].text, "h", 22);

                VERDICT(r, KNOWNHOSTS_NOTFOUND, 0);
                cr_assert_eq(r.types, 0, "%s", cases[i].text);
                cr_assert_eq(scan(cases[i].text), 1, "%s", cases[i].text);
                cr_assert_eq(note_line[0], 1);
                cr_assert(strstr(note_why[0], cases[i].why), "%s: %s", cases[i].text, note_why[0]);
                if (cases[i].text[0] != '@') {
                        cr_assert_eq(r.bad_line, 1, "%s", cases[i].text);
                        cr_assert(strstr(r.bad_why, cases[i].why));
                }
        }
        /* a comment after the key is not a trailing byte of it */
        VERDICT(look_a("h ssh-ed25519 " KEY_A " x y z\n", "h", 22), KNOWNHOSTS_MATCH, 1);
        /* a bad line for another host is not this host's */
        cr_assert_eq(look_a("other ssh-ed25519 AAAA\n", "h", 22).bad_line, 0);
}

Test(knownhosts, nul_byte) {
        static const char text[] = "h ssh-ed25519 " KEY_A "\0 x\nh ssh-ed25519 " KEY_A "\n";
        struct knownhosts_result r;

        cr_assert_eq(knownhosts_check(text, sizeof(text) - 1, "h", 22, blob_a, len_a, &r), 0);
        VERDICT(r, KNOWNHOSTS_MATCH, 2);
        notes = 0;
        cr_assert_eq(knownhosts_scan(text, sizeof(text) - 1, note, NULL), 1);
        cr_assert_eq(note_line[0], 1);
        cr_assert(strstr(note_why[0], "NUL"));
}

Test(knownhosts, huge_fields) {
        size_t big = KNOWNHOSTS_MAX_LINE + 10;
        char *text = malloc(big + 200);
        size_t n;

        cr_assert(text);
        /* a key over 8 KiB (a multiple of 4 of 'A's) */
        n = (size_t)sprintf(text, "h ssh-ed25519 ");
        memset(text + n, 'A', 12000);
        text[n + 12000] = 0;
        VERDICT(look_a(text, "h", 22), KNOWNHOSTS_NOTFOUND, 0);
        cr_assert_eq(scan(text), 1);
        cr_assert(strstr(note_why[0], "8 KiB"));
        /* a line over 64 KiB, even if it would match */
        memset(text, ',', big);
        n = (size_t)sprintf(text + big, "h ssh-ed25519 %s", KEY_A);
        VERDICT(look_a(text, "h", 22), KNOWNHOSTS_NOTFOUND, 0);
        cr_assert_eq(scan(text), 1);
        cr_assert(strstr(note_why[0], "64 KiB"));
        /* a sub-pattern over OpenSSH's 1023 fails the whole list */
        memset(text, '*', 1024);
        n = (size_t)sprintf(text + 1024, ",h ssh-ed25519 %s", KEY_A);
        VERDICT(look_a(text, "h", 22), KNOWNHOSTS_NOTFOUND, 0);
        memset(text, '*', 1023);
        n = (size_t)sprintf(text + 1023, ",h ssh-ed25519 %s", KEY_A);
        VERDICT(look_a(text, "h", 22), KNOWNHOSTS_MATCH, 1);
        (void)n;
        free(text);
}

Test(knownhosts, file_too_large_and_bad_host) {
        struct knownhosts_result r = { .verdict = KNOWNHOSTS_MATCH, .line = 7 };
        char big[400];

        cr_assert_eq(knownhosts_check("", KNOWNHOSTS_MAX_FILE + 1, "h", 22, blob_a, len_a, &r), -EFBIG);
        cr_assert_eq(knownhosts_scan("", KNOWNHOSTS_MAX_FILE + 1, note, NULL), -EFBIG);
        cr_assert_eq(knownhosts_check("", 0, "", 22, blob_a, len_a, &r), -EINVAL);
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        cr_assert_eq(knownhosts_check("", 0, big, 22, blob_a, len_a, &r), -ENAMETOOLONG);
        /* *ret is written on success only */
        cr_assert_eq(r.verdict, KNOWNHOSTS_MATCH);
        cr_assert_eq(r.line, 7);
}

Test(knownhosts, fingerprint_is_ssh_keygen_l) {
        char fp[KNOWNHOSTS_FINGERPRINT];

        cr_assert_eq(knownhosts_fingerprint(blob_a, len_a, fp, sizeof(fp)), 0);
        cr_assert_str_eq(fp, FP_A);
        cr_assert_eq(knownhosts_fingerprint(blob_a, len_a, fp, sizeof(fp) - 1), -ENOBUFS);
}

Test(knownhosts, read_file) {
        char dir[] = "/tmp/test_knownhosts.XXXXXX", path[64];
        char *text = (char *)1;
        size_t len = 99;
        int fd;

        cr_assert(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/kh", dir);
        cr_assert_eq(knownhosts_read(path, &text, &len), -ENOENT);
        cr_assert_eq(knownhosts_read(dir, &text, &len), -EINVAL);
        cr_assert_eq(text, (char *)1);
        cr_assert_eq(len, 99);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, "h ssh-ed25519 " KEY_A "\n", 15 + strlen(KEY_A)), (ssize_t)(15 + strlen(KEY_A)));
        cr_assert_eq(knownhosts_read(path, &text, &len), 0);
        cr_assert_eq(len, 15 + strlen(KEY_A));
        cr_assert_eq(memcmp(text, "h ssh-ed25519 ", 14), 0);
        free(text);
        cr_assert_eq(ftruncate(fd, KNOWNHOSTS_MAX_FILE + 1), 0);
        cr_assert_eq(knownhosts_read(path, &text, &len), -EFBIG);
        cr_assert_eq(ftruncate(fd, KNOWNHOSTS_MAX_FILE), 0);
        cr_assert_eq(knownhosts_read(path, &text, &len), 0);
        cr_assert_eq(len, KNOWNHOSTS_MAX_FILE);
        free(text);
        close(fd);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(rmdir(dir), 0);
}
