/* lib/conf: the configuration file (docs/DESIGN.md "Interface").
 *
 * Each test writes its config text to a temp file, loads it and checks either
 * every value or the exact error text. Error lines name the file; the helpers
 * replace the temp file's name with "F", so expectations read "F:8: key: why". */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf.h"
#include "lib/sess.h"

/* The smallest valid config: the six required keys on lines 2 to 7, so the
 * first line a test appends is line 8. */
#define NODE_MIN "[node]\nname = web1\nsession_dir = /s\nstate_dir = /st\nsocket = /run/s.sock\n" \
                 "identity = /k\nknown_hosts = /kh\n"

static char *write_tmp(const char *text, size_t len) {
        char tmpl[] = "/tmp/test_conf.XXXXXX";
        int fd = mkstemp(tmpl);

        cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
        cr_assert_eq(write(fd, text, len), (ssize_t)len);
        close(fd);
        return strdup(tmpl);
}

/* Every occurrence of from in s replaced by to; s is freed. */
static char *replace(char *s, const char *from, const char *to) {
        size_t n = 0, fl = strlen(from), tl = strlen(to);
        char *out, *o, *p;

        for (p = s; (p = strstr(p, from)); p += fl)
                n++;
        out = o = malloc(strlen(s) + n * tl + 1);
        cr_assert_not_null(out);
        for (p = s; *p;) {
                if (strncmp(p, from, fl) == 0) {
                        memcpy(o, to, tl);
                        o += tl;
                        p += fl;
                } else {
                        *o++ = *p++;
                }
        }
        *o = '\0';
        free(s);
        return out;
}

static int load_n(const char *text, size_t len, struct conf **ret, char **ret_errors) {
        char *path = write_tmp(text, len);
        int r;

        *ret = NULL;
        *ret_errors = NULL;
        r = conf_load(path, ret, ret_errors);
        if (*ret_errors)
                *ret_errors = replace(*ret_errors, path, "F");
        unlink(path);
        free(path);
        return r;
}

static struct conf *load_ok(const char *text) {
        struct conf *c = NULL;
        char *errs = NULL;
        int r = load_n(text, strlen(text), &c, &errs);

        cr_assert_eq(r, 0, "conf_load: %d, errors:\n%s\nconfig:\n%s", r, errs ? errs : "(none)", text);
        cr_assert_not_null(c);
        cr_assert_null(errs);
        return c;
}

static void expect_n(const char *text, size_t len, const char *want) {
        struct conf *c = NULL;
        char *errs = NULL;
        int r = load_n(text, len, &c, &errs);

        cr_expect_eq(r, -EINVAL, "conf_load: %d for:\n%s", r, text);
        cr_expect_null(c);
        cr_expect_str_eq(errs ? errs : "(no errors)", want, "config:\n%s\nwant:\n%sgot:\n%s", text, want,
                         errs ? errs : "(no errors)");
        conf_free(c);
        free(errs);
}

static void expect(const char *text, const char *want) {
        expect_n(text, strlen(text), want);
}

/* NODE_MIN with key set to value: in place if it is a required key (its
 * line returned in *ret_line), else appended as line 8. */
static char *node_with(const char *key, const char *value, int *ret_line) {
        static const char *const req[] = { "name", "session_dir", "state_dir", "socket", "identity",
                                           "known_hosts" };
        static const char *const def[] = { "web1", "/s", "/st", "/run/s.sock", "/k", "/kh" };
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        bool found = false;

        fputs("[node]\n", f);
        for (int i = 0; i < 6; i++) {
                bool it = strcmp(req[i], key) == 0;
                fprintf(f, "%s = %s\n", req[i], it ? value : def[i]);
                if (it) {
                        *ret_line = i + 2;
                        found = true;
                }
        }
        if (!found) {
                fprintf(f, "%s = %s\n", key, value);
                *ret_line = 8;
        }
        fclose(f);
        return text;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
        va_list ap;
        char *s;

        va_start(ap, f);
        cr_assert_geq(vasprintf(&s, f, ap), 0);
        va_end(ap);
        return s;
}

Test(conf, full_example) {
        struct conf *c = load_ok(
                "; sessync\n"
                "[node]\n"
                "name           = web-1.a_b                ; unique\n"
                "session_dir    = 2;/var/lib/php/sessions  ; PHP's save_path\n"
                "state_dir      = /var/lib/sessync\n"
                "socket         = /run/sessync/sessync.sock\n"
                "identity       = /etc/sessync/id_ed25519\n"
                "known_hosts    = /etc/sessync/known_hosts\n"
                "session_prefix = PHPSESS_\n"
                "max_file_size  = 64K\n"
                "session_lifetime = 30m\n"
                "tombstone_ttl  = 7d\n"
                "clock_skew_warn = 5\n"
                "log_level      = debug\n"
                "metrics_file   = /var/lib/prometheus/node-exporter/sessync.prom\n"
                "\n"
                "# the peers\n"
                "[peer web2]\n"
                "host = 10.0.0.2\n"
                "port = 2222\n"
                "user = php-sync\n"
                "\n"
                "[peer web3]   ; no options\n"
                "host = fe80::1%eth0\n");

        cr_expect_str_eq(c->name, "web-1.a_b");
        cr_expect_str_eq(c->session_dir, "/var/lib/php/sessions");
        cr_expect_eq(c->session_depth, 2);
        cr_expect_str_eq(c->state_dir, "/var/lib/sessync");
        cr_expect_str_eq(c->socket, "/run/sessync/sessync.sock");
        cr_expect_str_eq(c->identity, "/etc/sessync/id_ed25519");
        cr_expect_str_eq(c->identity_pub, "/etc/sessync/id_ed25519.pub");
        cr_expect_str_eq(c->known_hosts, "/etc/sessync/known_hosts");
        cr_expect_str_eq(c->session_prefix, "PHPSESS_");
        cr_expect_eq(c->max_file_size, 65536);
        cr_expect_eq(c->session_lifetime_ms, 1800000);
        cr_expect_eq(c->tombstone_ttl_ms, 7ull * 86400 * 1000);
        cr_expect_eq(c->clock_skew_warn_ms, 5000);
        cr_expect_eq(c->log_level, CONF_LOG_DEBUG);
        cr_expect_str_eq(c->metrics_file, "/var/lib/prometheus/node-exporter/sessync.prom");
        cr_assert_eq(c->n_peers, 2);
        cr_expect_str_eq(c->peers[0].name, "web2");
        cr_expect_str_eq(c->peers[0].host, "10.0.0.2");
        cr_expect_eq(c->peers[0].port, 2222);
        cr_expect_str_eq(c->peers[0].user, "php-sync");
        cr_expect_eq(c->peers[0].line, 18);
        cr_expect_str_eq(c->peers[1].name, "web3");
        cr_expect_str_eq(c->peers[1].host, "fe80::1%eth0");
        cr_expect_eq(c->peers[1].port, 22);
        cr_expect_str_eq(c->peers[1].user, "sessync");
        cr_expect_eq(c->peers[1].line, 23);
        cr_expect_neq(strstr(c->path, "/tmp/test_conf."), NULL);
        conf_free(c);
}

Test(conf, defaults_and_zero_peers) {
        struct conf *c = load_ok(NODE_MIN);

        cr_expect_str_eq(c->name, "web1");
        cr_expect_str_eq(c->session_dir, "/s");
        cr_expect_eq(c->session_depth, 0);
        cr_expect_str_eq(c->identity_pub, "/k.pub");
        cr_expect_str_eq(c->session_prefix, "sess_");
        cr_expect_eq(c->max_file_size, 1048576);
        cr_expect_eq(c->session_lifetime_ms, 1440000);
        cr_expect_eq(c->tombstone_ttl_ms, 86400000);
        cr_expect_eq(c->clock_skew_warn_ms, 2000);
        cr_expect_eq(c->log_level, CONF_LOG_INFO);
        cr_expect_null(c->metrics_file);
        cr_expect_eq(c->n_peers, 0);
        cr_expect_null(conf_peer_find(c, "web2"));
        conf_free(c);
}

Test(conf, peer_defaults) {
        struct conf *c = load_ok(NODE_MIN "[peer web2]\nhost = web2.example.com\n");

        cr_assert_eq(c->n_peers, 1);
        cr_expect_str_eq(c->peers[0].host, "web2.example.com");
        cr_expect_eq(c->peers[0].port, 22);
        cr_expect_str_eq(c->peers[0].user, "sessync");
        cr_expect_eq(c->peers[0].line, 8);
        conf_free(c);
}

Test(conf, many_peers) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        struct conf *c;

        fputs(NODE_MIN, f);
        for (int i = 0; i < 40; i++)
                fprintf(f, "[peer n%d]\nhost = 10.0.1.%d\n", i, i);
        fclose(f);
        c = load_ok(text);
        cr_assert_eq(c->n_peers, 40);
        cr_expect_str_eq(c->peers[39].name, "n39");
        cr_expect_str_eq(conf_peer_find(c, "n17")->host, "10.0.1.17");
        conf_free(c);
        free(text);
}

Test(conf, layout_tolerated) {
        /* BOM, CRLF, indented keys (not inih continuations), blanks, both comment styles,
         * section comments, ":" as inih's separator */
        struct conf *c = load_ok("\xef\xbb\xbf# top\r\n"
                                 "  [node]  ; this node\r\n"
                                 "\tname=web1\r\n"
                                 "    session_dir   =   /s   \r\n"
                                 "state_dir = /st\r\n"
                                 "socket = /run/s.sock\r\n"
                                 "identity = /k\r\n"
                                 "known_hosts: /kh\r\n"
                                 "   \r\n"
                                 "  ; indented comment\r\n"
                                 "[peer web2]\r\n"
                                 "    host = h2 ; inline\r\n"
                                 "    port = 22\r\n"
                                 "[peer web3]\n"
                                 "host = h3");  /* no final newline */

        cr_expect_str_eq(c->name, "web1");
        cr_expect_str_eq(c->session_dir, "/s");
        cr_expect_str_eq(c->known_hosts, "/kh");
        cr_assert_eq(c->n_peers, 2);
        cr_expect_str_eq(c->peers[0].host, "h2");
        cr_expect_eq(c->peers[0].line, 11);
        cr_expect_str_eq(c->peers[1].host, "h3");
        cr_expect_eq(c->peers[1].line, 14);
        conf_free(c);
}

Test(conf, value_may_contain_semicolon_without_space) {
        struct conf *c = load_ok("[node]\nname = web1\nsession_dir = 1;0600;/a;b\nstate_dir = /st\n"
                                 "socket = /run/s.sock\nidentity = /k\nknown_hosts = /kh\n");

        cr_expect_str_eq(c->session_dir, "/a;b");
        cr_expect_eq(c->session_depth, 1);
        conf_free(c);
}

Test(conf, session_dir_forms) {
        static const struct { const char *in; const char *dir; unsigned depth; } ok[] = {
                { "/x", "/x", 0 }, { "0;/x", "/x", 0 },
                { "2;/var/lib/php/sessions", "/var/lib/php/sessions", 2 },
                { "9;/x", "/x", 9 }, { "3;0700;/x", "/x", 3 }, { "1;600;/x", "/x", 1 },
                { "1;7777;/x", "/x", 1 }, { "02;/x", "/x", 2 }, { "1;0600;/a;b", "/a;b", 1 },
                { "2;x", "x", 2 }, /* the parser splits; conf_load checks the path */
        };
        static const char *const bad[] = { "10;/x", "a;/x", ";/x", "-1;/x", "2 ;/x", "2;0800;/x",
                                           "2;17777;/x", "2;;/x", "2;07a;/x", "99999999999999999999;/x" };

        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                const char *dir = NULL;
                unsigned depth = 99;
                cr_expect_eq(conf_parse_save_path(ok[i].in, &dir, &depth), 0, "%s", ok[i].in);
                cr_expect_str_eq(dir ? dir : "", ok[i].dir, "%s", ok[i].in);
                cr_expect_eq(depth, ok[i].depth, "%s", ok[i].in);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                const char *dir = "unchanged";
                unsigned depth = 99;
                cr_expect_eq(conf_parse_save_path(bad[i], &dir, &depth), -EINVAL, "%s", bad[i]);
                cr_expect_str_eq(dir, "unchanged");
                cr_expect_eq(depth, 99);
        }
        for (size_t i = 0; i < sizeof ok / sizeof ok[0] - 1; i++) {
                int line;
                char *text = node_with("session_dir", ok[i].in, &line);
                struct conf *c = load_ok(text);
                cr_expect_str_eq(c->session_dir, ok[i].dir);
                cr_expect_eq(c->session_depth, ok[i].depth);
                conf_free(c);
                free(text);
        }
}

Test(conf, size_parser) {
        static const struct { const char *in; int r; uint64_t v; } t[] = {
                { "0", 0, 0 }, { "512", 0, 512 }, { "64K", 0, 65536 }, { "1M", 0, 1048576 },
                { "15M", 0, 15728640 }, { "007", 0, 7 }, { "18446744073709551615", 0, UINT64_MAX },
                { "17592186044415M", 0, 17592186044415ull << 20 },
                { "18014398509481983K", 0, 18014398509481983ull << 10 },
                { "18446744073709551616", -ERANGE, 0 }, { "99999999999999999999M", -ERANGE, 0 },
                { "99999999999999999999", -ERANGE, 0 }, { "17592186044416M", -ERANGE, 0 },
                { "18014398509481984K", -ERANGE, 0 },
                { "", -EINVAL, 0 }, { "K", -EINVAL, 0 }, { "M", -EINVAL, 0 }, { "12X", -EINVAL, 0 },
                { "1KB", -EINVAL, 0 }, { "64k", -EINVAL, 0 }, { "1m", -EINVAL, 0 }, { "-1", -EINVAL, 0 },
                { "+1", -EINVAL, 0 }, { " 1", -EINVAL, 0 }, { "1 ", -EINVAL, 0 }, { "1.5M", -EINVAL, 0 },
                { "0x10", -EINVAL, 0 }, { "1G", -EINVAL, 0 }, { "99999999999999999999X", -EINVAL, 0 },
        };

        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                uint64_t v = 12345;
                cr_expect_eq(conf_parse_size(t[i].in, &v), t[i].r, "\"%s\"", t[i].in);
                cr_expect_eq(v, t[i].r == 0 ? t[i].v : 12345, "\"%s\": %llu", t[i].in, (unsigned long long)v);
        }
}

Test(conf, duration_parser) {
        static const struct { const char *in; int r; uint64_t v; } t[] = {
                { "0", 0, 0 }, { "30", 0, 30000 }, { "30s", 0, 30000 }, { "24m", 0, 1440000 },
                { "24h", 0, 86400000 }, { "7d", 0, 604800000 }, { "1440", 0, 1440000 },
                { "18446744073709551", 0, 18446744073709551000ull },
                { "213503982334d", 0, 213503982334ull * 86400000 },
                { "18446744073709552", -ERANGE, 0 }, { "213503982335d", -ERANGE, 0 },
                { "99999999999999999999s", -ERANGE, 0 }, { "99999999999999999999", -ERANGE, 0 },
                { "", -EINVAL, 0 }, { "s", -EINVAL, 0 }, { "1x", -EINVAL, 0 }, { "1ms", -EINVAL, 0 },
                { "1H", -EINVAL, 0 }, { "1M", -EINVAL, 0 }, { "-1", -EINVAL, 0 }, { "+1", -EINVAL, 0 },
                { " 1", -EINVAL, 0 }, { "1 ", -EINVAL, 0 }, { "1 h", -EINVAL, 0 }, { "1.5h", -EINVAL, 0 },
                { "1hh", -EINVAL, 0 }, { "0x10", -EINVAL, 0 }, { "99999999999999999999M", -EINVAL, 0 },
        };

        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                uint64_t v = 12345;
                cr_expect_eq(conf_parse_duration(t[i].in, &v), t[i].r, "\"%s\"", t[i].in);
                cr_expect_eq(v, t[i].r == 0 ? t[i].v : 12345, "\"%s\": %llu", t[i].in, (unsigned long long)v);
        }
}

Test(conf, small_parsers) {
        uint16_t port = 7;
        int level = 0;
        char buf[32];

        cr_expect_eq(conf_parse_port("1", &port), 0);
        cr_expect_eq(port, 1);
        cr_expect_eq(conf_parse_port("65535", &port), 0);
        cr_expect_eq(port, 65535);
        cr_expect_eq(conf_parse_port("0", &port), -ERANGE);
        cr_expect_eq(conf_parse_port("65536", &port), -ERANGE);
        cr_expect_eq(conf_parse_port("99999999999999999999", &port), -ERANGE);
        cr_expect_eq(conf_parse_port("22a", &port), -EINVAL);
        cr_expect_eq(conf_parse_port("-1", &port), -EINVAL);
        cr_expect_eq(conf_parse_port("", &port), -EINVAL);
        cr_expect_eq(port, 65535);

        cr_expect_eq(conf_parse_log_level("error", &level), 0);
        cr_expect_eq(level, CONF_LOG_ERROR);
        cr_expect_eq(conf_parse_log_level("warn", &level), 0);
        cr_expect_eq(level, CONF_LOG_WARN);
        cr_expect_eq(conf_parse_log_level("info", &level), 0);
        cr_expect_eq(level, CONF_LOG_INFO);
        cr_expect_eq(conf_parse_log_level("debug", &level), 0);
        cr_expect_eq(level, CONF_LOG_DEBUG);
        cr_expect_eq(conf_parse_log_level("warning", &level), -EINVAL);
        cr_expect_eq(conf_parse_log_level("INFO", &level), -EINVAL);
        cr_expect_eq(level, CONF_LOG_DEBUG);

        cr_expect(conf_token_valid("web-1.a_B9", CONF_NODE_MAX, CONF_NODE_EXTRA));
        cr_expect_not(conf_token_valid("", CONF_NODE_MAX, CONF_NODE_EXTRA));
        cr_expect_not(conf_token_valid("a b", CONF_NODE_MAX, CONF_NODE_EXTRA));
        cr_expect_not(conf_token_valid("a/b", CONF_NODE_MAX, CONF_NODE_EXTRA));
        cr_expect(conf_token_valid("abc", 3, ""));
        cr_expect_not(conf_token_valid("abcd", 3, ""));

        cr_expect_str_eq(conf_format_duration(1440000, buf, sizeof buf), "24m");
        cr_expect_str_eq(conf_format_duration(86400000, buf, sizeof buf), "1d");
        cr_expect_str_eq(conf_format_duration(7200000, buf, sizeof buf), "2h");
        cr_expect_str_eq(conf_format_duration(90000, buf, sizeof buf), "90s");
        cr_expect_str_eq(conf_format_duration(1500, buf, sizeof buf), "1500ms");
        cr_expect_str_eq(conf_format_duration(0, buf, sizeof buf), "0ms");
}

#define SAVE_PATH_WHY "is not \"/path\", \"N;/path\" or \"N;MODE;/path\" (N 0 to 9, MODE octal)"

Test(conf, bad_values) {
        static const struct { const char *key, *value, *why; } t[] = {
                { "name", "we b1", "is not a node name (1 to 64 of A-Z a-z 0-9 . _ -)" },
                { "name", "a/b", "is not a node name (1 to 64 of A-Z a-z 0-9 . _ -)" },
                { "name", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", /* 65 */
                  "is not a node name (1 to 64 of A-Z a-z 0-9 . _ -)" },
                { "session_dir", "var/x", "is not an absolute path" },
                { "session_dir", "2;var/x", "is not an absolute path" },
                { "session_dir", "10;/x", SAVE_PATH_WHY },
                { "session_dir", "2;0800;/x", SAVE_PATH_WHY },
                { "state_dir", "relative", "is not an absolute path" },
                { "socket", "run/s.sock", "is not an absolute path" },
                { "socket", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 108 bytes */
                            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  "is longer than 107 bytes, the limit of a unix socket path" },
                { "identity", "~/.ssh/id_ed25519", "is not an absolute path" },
                { "known_hosts", "known_hosts", "is not an absolute path" },
                { "metrics_file", "sessync.prom", "is not an absolute path" },
                { "session_format", "symfony", "is not php, laravel or codeigniter4" },
                { "session_format", "PHP", "is not php, laravel or codeigniter4" },
                { "session_prefix", "sess!", "is not a session prefix (1 to 32 of A-Z a-z 0-9 _ . -)" },
                { "session_prefix", "-sess", "is not a session prefix (1 to 32 of A-Z a-z 0-9 _ . -)" },
                { "session_prefix", "sssssssssssssssssssssssssssssssss", /* 33 */
                  "is not a session prefix (1 to 32 of A-Z a-z 0-9 _ . -)" },
                { "max_file_size", "12X", "is not a size (use 512, 64K or 1M)" },
                { "max_file_size", "1.5M", "is not a size (use 512, 64K or 1M)" },
                { "max_file_size", "-1", "is not a size (use 512, 64K or 1M)" },
                { "max_file_size", "1 M", "is not a size (use 512, 64K or 1M)" },
                { "max_file_size", "0", "is out of range (1 to 15M)" },
                { "max_file_size", "16M", "is out of range (1 to 15M)" },
                { "max_file_size", "15728641", "is out of range (1 to 15M)" },
                { "max_file_size", "99999999999999999999M", "is out of range (1 to 15M)" },
                { "session_lifetime", "24x", "is not a duration (use 30s, 24m, 24h or 7d)" },
                { "session_lifetime", "0", "is out of range (1s to 3650d)" },
                { "session_lifetime", "99999999999999999999s", "is out of range (1s to 3650d)" },
                { "tombstone_ttl", "3651d", "is out of range (1s to 3650d)" },
                { "tombstone_ttl", "1y", "is not a duration (use 30s, 24m, 24h or 7d)" },
                { "clock_skew_warn", "500ms", "is not a duration (use 30s, 24m, 24h or 7d)" },
                { "log_level", "verbose", "is not error, warn, info or debug" },
                { "log_level", "INFO", "is not error, warn, info or debug" },
        };

        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                int line = 0;
                char *text = node_with(t[i].key, t[i].value, &line);
                char *want = fmt("F:%d: %s: \"%s\" %s\n", line, t[i].key, t[i].value, t[i].why);
                expect(text, want);
                free(text);
                free(want);
        }
}

Test(conf, longest_socket_path_accepted) {
        int line;
        char path[108];
        char *text;
        struct conf *c;

        path[0] = '/';
        memset(path + 1, 'a', 106);
        path[107] = '\0';
        text = node_with("socket", path, &line);
        c = load_ok(text);
        cr_expect_eq(strlen(c->socket), 107);
        conf_free(c);
        free(text);
}

Test(conf, bad_peer_values) {
        static const struct { const char *key, *value, *why; } t[] = {
                { "host", "a b", "is not a host name or address" },
                { "host", "[::1]", "is not a host name or address" },
                { "host", "-oProxyCommand=x", "is not a host name or address" },
                { "port", "0", "is not a port (1 to 65535)" },
                { "port", "65536", "is not a port (1 to 65535)" },
                { "port", "22a", "is not a port (1 to 65535)" },
                { "port", "0x16", "is not a port (1 to 65535)" },
                { "port", "-1", "is not a port (1 to 65535)" },
                { "user", "-root", "is not a user name" },
                { "user", "a b", "is not a user name" },
                { "user", "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu", "is not a user name" }, /* 33 */
        };

        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                bool host = strcmp(t[i].key, "host") == 0;
                char *text = fmt(NODE_MIN "[peer web2]\n%s%s = %s\n", host ? "" : "host = h\n", t[i].key,
                                 t[i].value);
                char *want = fmt("F:%d: %s: \"%s\" %s\n", host ? 9 : 10, t[i].key, t[i].value, t[i].why);
                expect(text, want);
                free(text);
                free(want);
        }
}

Test(conf, empty_and_quoted_values) {
        expect(NODE_MIN "log_level =\n", "F:8: log_level: empty value\n");
        expect(NODE_MIN "metrics_file =    ; unset\n", "F:8: metrics_file: empty value\n");
        expect(NODE_MIN "[peer web2]\nhost = h\nport =\n", "F:10: port: empty value\n");
        /* a required key, present but empty: "empty value", not also "missing" */
        expect("[node]\nname =\nsession_dir = /s\nstate_dir = /st\nsocket = /run/s.sock\n"
               "identity = /k\nknown_hosts = /kh\n",
               "F:2: name: empty value\n");
        expect("[node]\nname = web1\nsession_dir = \"2;/s\"\nstate_dir = /st\nsocket = /run/s.sock\n"
               "identity = /k\nknown_hosts = /kh\n",
               "F:3: session_dir: \"2;/s\": remove the quotes (values are taken as written)\n");
}

Test(conf, sections) {
        expect(NODE_MIN "[nodes]\nhost = a\n", "F:8: nodes: unknown section (use [node] or [peer NAME])\n");
        expect(NODE_MIN "[Peer web2]\nhost = a\n",
               "F:8: Peer web2: unknown section (use [node] or [peer NAME])\n");
        expect(NODE_MIN "[]\n", "F:8: []: unknown section (use [node] or [peer NAME])\n");
        expect(NODE_MIN "[peer]\nhost = a\n",
               "F:8: peer: not [peer NAME] (one space, NAME 1 to 64 of A-Z a-z 0-9 . _ -)\n");
        expect(NODE_MIN "[peer  web2]\nhost = a\n",
               "F:8: peer  web2: not [peer NAME] (one space, NAME 1 to 64 of A-Z a-z 0-9 . _ -)\n");
        expect(NODE_MIN "[peer\tweb2]\nhost = a\n",
               "F:8: peer\tweb2: not [peer NAME] (one space, NAME 1 to 64 of A-Z a-z 0-9 . _ -)\n");
        expect(NODE_MIN "[peer we/b2]\nhost = a\nbogus = 1\n",
               "F:8: peer we/b2: not [peer NAME] (one space, NAME 1 to 64 of A-Z a-z 0-9 . _ -)\n");
        expect(NODE_MIN "[peer web2\nhost = a\n", "F:8: peer web2: the section header has no \"]\"\n");
        expect(NODE_MIN "[peer web2] host = a\n", "F:8: peer web2: text after \"]\"\n");
        expect(NODE_MIN "[node]\nname = web9\n", "F:8: node: duplicate section (first at line 1)\n");
}

Test(conf, peer_name_length) {
        static const char x[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        char *text = fmt(NODE_MIN "[peer %.64s]\nhost = a\n", x);
        char *want;
        struct conf *c = load_ok(text);

        cr_assert_eq(c->n_peers, 1);
        cr_expect_eq(strlen(c->peers[0].name), 64);
        cr_expect_eq(conf_peer_find(c, c->peers[0].name), &c->peers[0]);
        conf_free(c);
        free(text);

        text = fmt(NODE_MIN "[peer %.65s]\nhost = a\n", x);
        want = fmt("F:8: peer %.65s: not [peer NAME] (one space, NAME 1 to 64 of A-Z a-z 0-9 . _ -)\n", x);
        expect(text, want);
        free(text);
        free(want);
}

Test(conf, unknown_and_duplicate_keys) {
        expect(NODE_MIN "hostname = x\n", "F:8: hostname: unknown key in [node]\n");
        expect(NODE_MIN "Name = x\n", "F:8: Name: unknown key in [node]\n");
        expect(NODE_MIN "host = x\n", "F:8: host: unknown key in [node] (it belongs in [peer NAME])\n");
        expect(NODE_MIN "[peer web2]\nhost = h\nname = web2\n",
               "F:10: name: unknown key in [peer web2] (it belongs in [node])\n");
        expect(NODE_MIN "[peer web2]\nhost = h\nhostname = h\n",
               "F:10: hostname: unknown key in [peer web2]\n");
        expect(NODE_MIN "name = web9\n", "F:8: name: set twice in [node] (first at line 2)\n");
        expect(NODE_MIN "log_level = info\nlog_level = debug\n",
               "F:9: log_level: set twice in [node] (first at line 8)\n");
        /* the first was refused: still set twice */
        expect(NODE_MIN "log_level = loud\nlog_level = debug\n",
               "F:8: log_level: \"loud\" is not error, warn, info or debug\n"
               "F:9: log_level: set twice in [node] (first at line 8)\n");
        expect(NODE_MIN "[peer web2]\nhost = a\nport = 22\nhost = b\n",
               "F:11: host: set twice in [peer web2] (first at line 9)\n");
        /* the same key in two peers is fine */
        conf_free(load_ok(NODE_MIN "[peer web2]\nhost = a\n[peer web3]\nhost = b\n"));
}

Test(conf, peers) {
        expect(NODE_MIN "[peer web2]\nhost = a\n[peer web3]\nhost = b\n[peer web2]\nhost = c\n",
               "F:12: peer web2: duplicate section (first at line 8)\n");
        expect(NODE_MIN "[peer web1]\nhost = a\n",
               "F:8: peer web1: a peer cannot have this node's own name\n");
        /* known only once [node] is read */
        expect("[peer web1]\nhost = a\n[node]\nname = web1\nsession_dir = /s\nstate_dir = /st\n"
               "socket = /run/s.sock\nidentity = /k\nknown_hosts = /kh\n",
               "F:1: peer web1: a peer cannot have this node's own name\n");
        expect(NODE_MIN "[peer web2]\nport = 2222\n", "F:8: host: missing in [peer web2]\n");
        expect(NODE_MIN "[peer web2]\n", "F:8: host: missing in [peer web2]\n");
}

Test(conf, missing_node_keys) {
        static const char *const req[] = { "name", "session_dir", "state_dir", "socket", "identity",
                                           "known_hosts" };

        expect("", "F:1: node: no [node] section\n");
        expect("; nothing\n[peer web2]\nhost = a\n", "F:1: node: no [node] section\n");
        expect("\n\n[node]\n",
               "F:3: name: missing in [node]\nF:3: session_dir: missing in [node]\n"
               "F:3: state_dir: missing in [node]\nF:3: socket: missing in [node]\n"
               "F:3: identity: missing in [node]\nF:3: known_hosts: missing in [node]\n");
        for (size_t i = 0; i < 6; i++) {
                char *text = strdup(NODE_MIN), *line = strstr(text, req[i]), *want;
                /* comment the key out */
                line[0] = ';';
                want = fmt("F:1: %s: missing in [node]\n", req[i]);
                expect(text, want);
                free(text);
                free(want);
        }
}

Test(conf, syntax) {
        expect("x = 1\n" NODE_MIN, "F:1: x: outside any section (keys go under [node] or [peer NAME])\n");
        expect("garbage\n" NODE_MIN, "F:1: line: \"garbage\" is not \"key = value\" or a [section]\n");
        expect(NODE_MIN "hostname\n", "F:8: node: \"hostname\" is not \"key = value\" or a [section]\n");
        expect(NODE_MIN "[peer web2]\nhost 10.0.0.2 ; = not a separator\n",
               "F:9: peer web2: \"host 10.0.0.2 ; = not a separator\" is not \"key = value\" or a [section]\n"
               "F:8: host: missing in [peer web2]\n");
        expect(NODE_MIN "= web2\n", "F:8: node: a line starts with \"=\": the key name is missing\n");
}

/* Each framework's names and default lifetime (docs/DESIGN.md "Session
 * names"). */
Test(conf, session_format) {
        struct conf *c = load_ok(NODE_MIN);

        cr_expect_eq(c->session_format, SESS_FORMAT_PHP);
        cr_expect_str_eq(conf_format_name(c->session_format), "php");
        conf_free(c);
        c = load_ok(NODE_MIN "session_format = laravel\n");
        cr_expect_eq(c->session_format, SESS_FORMAT_LARAVEL);
        cr_expect_str_eq(c->session_prefix, "");
        cr_expect_eq(c->session_lifetime_ms, 120 * 60 * 1000, "Laravel's default lifetime is 120 minutes");
        conf_free(c);
        c = load_ok(NODE_MIN "session_format = laravel\nsession_lifetime = 8h\n");
        cr_expect_eq(c->session_lifetime_ms, 8 * 3600 * 1000, "a lifetime set is kept");
        conf_free(c);
        c = load_ok(NODE_MIN "session_format = codeigniter4\n");
        cr_expect_eq(c->session_format, SESS_FORMAT_CI4);
        cr_expect_str_eq(c->session_prefix, "ci_session", "CodeIgniter's default cookie name");
        cr_expect_eq(c->session_lifetime_ms, 7200 * 1000);
        conf_free(c);
        c = load_ok(NODE_MIN "session_format = codeigniter4\nsession_prefix = myapp\n");
        cr_expect_str_eq(c->session_prefix, "myapp");
        conf_free(c);
        expect(NODE_MIN "session_prefix = sess_\nsession_format = laravel\n",
               "F:8: session_prefix: not used with session_format = laravel: Laravel names its files with the "
               "bare 40-character id; remove the line\n");
        /* The lifetime a format brings is checked against tombstone_ttl too. */
        expect(NODE_MIN "session_format = codeigniter4\ntombstone_ttl = 1h\n",
               "F:9: tombstone_ttl: 1h must be longer than session_lifetime (2h)\n");
        cr_expect_str_eq(conf_format_name(99), "?");
}

Test(conf, tombstone_ttl_must_outlive_sessions) {
        expect(NODE_MIN "session_lifetime = 2d\n",
               "F:8: tombstone_ttl: 1d (the default) must be longer than session_lifetime (2d)\n");
        expect(NODE_MIN "session_lifetime = 1h\ntombstone_ttl = 60m\n",
               "F:9: tombstone_ttl: 1h must be longer than session_lifetime (1h)\n");
        expect(NODE_MIN "tombstone_ttl = 20m\n",
               "F:8: tombstone_ttl: 20m must be longer than session_lifetime (24m)\n");
        /* a refused value is reported once, not compared */
        expect(NODE_MIN "session_lifetime = forever\n",
               "F:8: session_lifetime: \"forever\" is not a duration (use 30s, 24m, 24h or 7d)\n");
        conf_free(load_ok(NODE_MIN "session_lifetime = 1h\ntombstone_ttl = 3601\n"));
}

Test(conf, long_lines) {
        char line[2100], *text;
        struct conf *c;

        /* 199 characters: the longest inih reads whole */
        memset(line, 'a', sizeof line);
        memcpy(line, "metrics_file = /", 16);
        line[199] = '\0';
        text = fmt(NODE_MIN "%s\n", line);
        c = load_ok(text);
        cr_expect_eq(strlen(c->metrics_file), 199 - 15);
        conf_free(c);
        free(text);

        line[199] = 'a';
        line[200] = '\0';
        text = fmt(NODE_MIN "%s\n", line);
        expect(text, "F:8: node: the line is 200 characters long, at most 199 are allowed\n");
        free(text);

        /* longer than the reader's own buffer; the next line keeps its number */
        memset(line + 16, 'a', sizeof line - 16);
        line[2000] = '\0';
        text = fmt(NODE_MIN "%s\nbogus = 1\n", line);
        expect(text, "F:8: node: the line is 2000 characters long, at most 199 are allowed\n"
                     "F:9: bogus: unknown key in [node]\n");
        free(text);
}

Test(conf, nul_byte) {
        static const char text[] = NODE_MIN "log_level = in\0fo\n";

        expect_n(text, sizeof text - 1, "F:8: node: the line holds a NUL byte\n");
}

Test(conf, all_errors_reported_together) {
        expect("[node]\n"
               "name = web 1\n"                 /* 2: bad value */
               "session_dir = sessions\n"       /* 3: relative */
               "state_dir = /st\n"
               "identity = /k\n"
               "known_hosts = /kh\n"
               "max_file_size = 12X\n"          /* 7 */
               "colour = blue\n"                /* 8: unknown key */
               "[peer web2]\n"
               "host = 10.0.0.2\n"
               "port = 99999\n"                 /* 11 */
               "[peer web2]\n"                  /* 12: duplicate */
               "host = 10.0.0.3\n"
               "[peer web3]\n"                  /* 14: no host */
               "[replica]\n",                   /* 15 */
               "F:2: name: \"web 1\" is not a node name (1 to 64 of A-Z a-z 0-9 . _ -)\n"
               "F:3: session_dir: \"sessions\" is not an absolute path\n"
               "F:7: max_file_size: \"12X\" is not a size (use 512, 64K or 1M)\n"
               "F:8: colour: unknown key in [node]\n"
               "F:11: port: \"99999\" is not a port (1 to 65535)\n"
               "F:12: peer web2: duplicate section (first at line 9)\n"
               "F:14: host: missing in [peer web3]\n"
               "F:15: replica: unknown section (use [node] or [peer NAME])\n"
               "F:1: socket: missing in [node]\n");
}

Test(conf, unreadable_files) {
        struct conf *c = NULL;
        char *errs = NULL;
        char *path, *big;
        size_t n = (1u << 20) + 10;

        cr_expect_eq(conf_load("/nonexistent/sessync.conf", &c, &errs), -ENOENT);
        cr_expect_null(c);
        cr_expect_str_eq(errs, "/nonexistent/sessync.conf: No such file or directory\n");
        free(errs);
        errs = NULL;

        cr_expect_eq(conf_load("/tmp", &c, &errs), -EISDIR);
        cr_expect_null(c);
        cr_expect_str_eq(errs, "/tmp: Is a directory\n");
        free(errs);
        errs = NULL;

        /* a file of comments over the cap: refused, not read to the end */
        big = malloc(n);
        cr_assert_not_null(big);
        memset(big, '#', n);
        for (size_t i = 79; i < n; i += 80)
                big[i] = '\n';
        path = write_tmp(big, n);
        cr_expect_eq(conf_load(path, &c, &errs), -EFBIG);
        cr_expect_null(c);
        cr_expect_not_null(errs);
        free(errs);
        unlink(path);
        free(path);
        free(big);

        /* ret_errors may be NULL */
        cr_expect_eq(conf_load("/nonexistent/sessync.conf", &c, NULL), -ENOENT);
}

Test(conf, peer_find) {
        struct conf *c = load_ok(NODE_MIN "[peer web2]\nhost = 10.0.0.2\n[peer web3]\nhost = 10.0.0.3\n");
        const struct conf_peer *p;

        p = conf_peer_find(c, "web2");
        cr_assert_not_null(p);
        cr_expect_str_eq(p->host, "10.0.0.2");
        cr_expect_eq(p, &c->peers[0]);
        p = conf_peer_find(c, "web3");
        cr_assert_not_null(p);
        cr_expect_str_eq(p->host, "10.0.0.3");
        cr_expect_null(conf_peer_find(c, "web4"));
        cr_expect_null(conf_peer_find(c, "web1"));
        cr_expect_null(conf_peer_find(c, "web"));
        cr_expect_null(conf_peer_find(c, ""));
        conf_free(c);
}

Test(conf, free_null) {
        conf_free(NULL);
}

Test(conf, shipped_example_loads) {
        struct conf *c = NULL;
        char *errs = NULL;
        int r = conf_load("conf/sessync.conf", &c, &errs);

        cr_assert_eq(r, 0, "conf/sessync.conf: %d\n%s", r, errs ? errs : "");
        cr_expect_str_eq(c->name, "web1");
        cr_expect_str_eq(c->session_dir, "/var/lib/php/sessions");
        cr_expect_str_eq(c->state_dir, "/var/lib/sessync");
        cr_expect_str_eq(c->socket, "/run/sessync/sessync.sock");
        cr_expect_str_eq(c->identity, "/etc/sessync/id_ed25519");
        cr_expect_str_eq(c->identity_pub, "/etc/sessync/id_ed25519.pub");
        cr_expect_str_eq(c->known_hosts, "/etc/sessync/known_hosts");
        cr_expect_str_eq(c->session_prefix, "sess_");
        cr_assert_eq(c->n_peers, 2);
        cr_expect_str_eq(c->peers[0].name, "web2");
        cr_expect_str_eq(c->peers[0].host, "10.0.0.2");
        cr_expect_str_eq(c->peers[1].name, "web3");
        cr_expect_str_eq(c->peers[1].host, "10.0.0.3");
        cr_expect_not_null(conf_peer_find(c, "web3"));
        conf_free(c);
}

/* Every commented-out default in the example is the real default: uncomment
 * them all and the values do not change. */
Test(conf, shipped_example_defaults_are_true) {
        FILE *f = fopen("conf/sessync.conf", "re");
        char *text = NULL, *line = NULL;
        size_t len = 0, cap = 0;
        FILE *out = open_memstream(&text, &len);
        struct conf *c;
        int n_set = 0;

        cr_assert_not_null(f);
        while (getline(&line, &cap, f) > 0) {
                bool setting = line[0] == ';' && line[1] >= 'a' && line[1] <= 'z' && strchr(line, '=');
                fputs(setting ? line + 1 : line, out);
                n_set += setting;
        }
        fclose(f);
        fclose(out);
        free(line);
        c = load_ok(text);
        cr_expect_eq(n_set, 12 + 2 * 2);
        cr_expect_eq(c->session_format, SESS_FORMAT_PHP);
        cr_expect_str_eq(c->session_prefix, "sess_");
        cr_expect_eq(c->max_file_size, 1048576);
        cr_expect_eq(c->session_lifetime_ms, 1440000);
        cr_expect_eq(c->tombstone_ttl_ms, 86400000);
        cr_expect_eq(c->clock_skew_warn_ms, 2000);
        cr_expect_eq(c->resync_interval_ms, 60000);
        cr_expect_eq(c->log_level, CONF_LOG_INFO);
        cr_expect_str_eq(c->metrics_file, "/var/lib/prometheus/node-exporter/sessync.prom");
        cr_expect_str_eq(c->php_user, "www-data");   /* an example, like metrics_file: unset = the daemon's user */
        cr_expect_eq(c->ready_timeout_ms, 30000);
        cr_expect_str_eq(c->health_listen, "10.0.0.1:9777");   /* an example: unset = no listener */
        cr_expect_eq(c->peers[1].port, 22);
        cr_expect_str_eq(c->peers[1].user, "sessync");
        conf_free(c);
        free(text);
}

Test(conf, parse_listen) {
        char addr[64];
        uint16_t port = 0;

        cr_assert_eq(conf_parse_listen("127.0.0.1:9777", addr, sizeof(addr), &port), 0);
        cr_expect_str_eq(addr, "127.0.0.1");
        cr_expect_eq(port, 9777);
        cr_assert_eq(conf_parse_listen("[::1]:80", addr, sizeof(addr), &port), 0);
        cr_expect_str_eq(addr, "::1");
        cr_expect_eq(port, 80);
        cr_expect_eq(conf_parse_listen("localhost:80", NULL, 0, NULL), -EINVAL, "numeric addresses only");
        cr_expect_eq(conf_parse_listen("127.0.0.1", NULL, 0, NULL), -EINVAL);
        cr_expect_eq(conf_parse_listen("127.0.0.1:0", NULL, 0, NULL), -EINVAL);
        cr_expect_eq(conf_parse_listen("127.0.0.1:65536", NULL, 0, NULL), -EINVAL);
        cr_expect_eq(conf_parse_listen("::1:80", NULL, 0, NULL), -EINVAL, "IPv6 needs brackets");
        cr_expect_eq(conf_parse_listen("[::1]80", NULL, 0, NULL), -EINVAL);
        cr_expect_eq(conf_parse_listen(":80", NULL, 0, NULL), -EINVAL);
        cr_expect_eq(conf_parse_listen("[]:80", NULL, 0, NULL), -EINVAL);
        cr_expect_eq(conf_parse_listen("127.0.0.1:9777", addr, 4, &port), -ERANGE);
}
