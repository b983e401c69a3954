/* libFuzzer target for lib/conf: the whole config parser (our line reader,
 * inih's key = value split, value parsers, cross-key validation) on
 * arbitrary bytes, and the pure value parsers on their own.
 *
 * conf_load_mem() parses from memory (the same body as conf_load, which
 * only adds the fopen): no file is touched.
 *
 * Invariants checked (abort() on a break, so libFuzzer keeps the input):
 *  - conf_load returns 0 or -EINVAL (the input is never too big to read:
 *    -max_len is far below the 1 MiB cap); *ret is set only on success,
 *    *ret_errors only on failure.
 *  - An error text is one or more lines "PATH:LINE: KEY: WHY\n", LINE
 *    between 1 and the number of lines of the input.
 *  - A loaded config holds what conf.h promises: every required field set,
 *    absolute paths, valid names, ranges, tombstone_ttl > session_lifetime,
 *    peers with host and user, unique and not this node's name, found by
 *    conf_peer_find.
 *  - The same bytes load the same way twice (no state kept between loads).
 *  - Value parsers: a parsed duration formats back to itself; a port is
 *    1..65535; a save path's directory points into the string.
 * conf_free releases everything: LeakSanitizer (on by default under
 * libFuzzer) fails the run on any leak.
 *
 * Build and run: tests/fuzz/run. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                             \
        do {                                                                                 \
                if (!(c)) {                                                                  \
                        fprintf(stderr, "fuzz_conf: %s:%d: %s\n", __FILE__, __LINE__, #c); \
                        abort();                                                             \
                }                                                                            \
        } while (0)

#define FUZZ_NAME "fuzz.conf"

static bool abs_path(const char *s) {
        return s && s[0] == '/';
}

static void check_conf(const struct conf *c) {
        size_t idlen;

        CHECK(c->path && strcmp(c->path, FUZZ_NAME) == 0);
        CHECK(conf_token_valid(c->name, CONF_NODE_MAX, CONF_NODE_EXTRA));
        CHECK(abs_path(c->session_dir) && c->session_depth <= 9);
        CHECK(abs_path(c->state_dir));
        CHECK(abs_path(c->socket) && strlen(c->socket) <= 107);
        CHECK(abs_path(c->identity) && abs_path(c->known_hosts));
        idlen = strlen(c->identity);
        CHECK(c->identity_pub && strncmp(c->identity_pub, c->identity, idlen) == 0 &&
              strcmp(c->identity_pub + idlen, ".pub") == 0);
        CHECK(c->session_prefix && c->session_prefix[0] != '-' &&
              conf_token_valid(c->session_prefix, 32, "_.-"));
        CHECK(c->max_file_size >= 1 && c->max_file_size <= (15ull << 20));
        CHECK(c->session_lifetime_ms >= 1000 && c->tombstone_ttl_ms > c->session_lifetime_ms);
        CHECK(c->clock_skew_warn_ms >= 1000 && c->resync_interval_ms >= 1000);
        CHECK(c->log_level == CONF_LOG_ERROR || c->log_level == CONF_LOG_WARN || c->log_level == CONF_LOG_INFO ||
              c->log_level == CONF_LOG_DEBUG);
        CHECK(c->metrics_file == NULL || abs_path(c->metrics_file));
        CHECK(c->n_peers == 0 || c->peers);
        for (size_t i = 0; i < c->n_peers; i++) {
                const struct conf_peer *p = &c->peers[i];

                CHECK(conf_token_valid(p->name, CONF_NODE_MAX, CONF_NODE_EXTRA));
                CHECK(strcmp(p->name, c->name) != 0);
                CHECK(p->host && p->host[0] != '-' && conf_token_valid(p->host, 255, "._:%-"));
                CHECK(p->user && p->user[0] != '-' && conf_token_valid(p->user, 32, "._-"));
                CHECK(p->port >= 1);
                CHECK(p->line >= 1);
                CHECK(conf_peer_find(c, p->name) == p);   /* names are unique */
        }
        CHECK(conf_peer_find(c, c->name) == NULL);
}

/* "PATH:LINE: KEY: WHY\n" lines, LINE in 1..max_line. */
static void check_errors(const char *errs, long max_line) {
        size_t plen = strlen(FUZZ_NAME);
        const char *s = errs;

        CHECK(s && *s);
        while (*s) {
                const char *nl = strchr(s, '\n');
                char *end;
                long line;

                CHECK(nl);   /* every line is terminated */
                CHECK(strncmp(s, FUZZ_NAME, plen) == 0 && s[plen] == ':');
                line = strtol(s + plen + 1, &end, 10);
                CHECK(end > s + plen + 1 && end < nl && end[0] == ':' && end[1] == ' ');
                CHECK(line >= 1 && line <= max_line);
                s = nl + 1;
        }
}

static void fuzz_load(const uint8_t *data, size_t size) {
        struct conf *c = NULL, *c2 = NULL;
        char *errs = NULL, *errs2 = NULL;
        long lines = 1;
        int r, r2;

        for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';
        r = conf_load_mem(FUZZ_NAME, data, size, &c, &errs);
        CHECK(r == 0 || r == -EINVAL);
        if (r == 0) {
                CHECK(c && !errs);
                check_conf(c);
        } else {
                CHECK(!c);
                check_errors(errs, lines);
        }

        r2 = conf_load_mem(FUZZ_NAME, data, size, &c2, &errs2);
        CHECK(r2 == r);
        CHECK((errs == NULL) == (errs2 == NULL));
        CHECK(!errs || strcmp(errs, errs2) == 0);
        if (r == 0) {
                CHECK(strcmp(c->name, c2->name) == 0 && c->n_peers == c2->n_peers);
                CHECK(strcmp(c->session_dir, c2->session_dir) == 0);
                CHECK(c->tombstone_ttl_ms == c2->tombstone_ttl_ms);
        }
        /* A NULL ret_errors is allowed too. */
        conf_free(c2);
        c2 = NULL;
        CHECK(conf_load_mem(FUZZ_NAME, data, size, &c2, NULL) == r);
        conf_free(c2);

        conf_free(c);
        free(errs);
        free(errs2);
}

/* The value parsers, pure functions, on the input as one string. */
static void fuzz_values(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1), buf[40];
        const char *dir = NULL;
        unsigned depth = 99;
        uint64_t n = 0, n2 = 0;
        uint16_t port = 0;
        int level = 0, r;

        CHECK(s);
        memcpy(s, data, size);
        s[size] = '\0';

        r = conf_parse_size(s, &n);
        CHECK(r == 0 || r == -EINVAL || r == -ERANGE);

        r = conf_parse_duration(s, &n);
        CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
        if (r == 0) {
                CHECK(n % 1000 == 0);   /* the smallest unit is the second */
                conf_format_duration(n, buf, sizeof(buf));
                if (n > 0) {
                        CHECK(conf_parse_duration(buf, &n2) == 0);
                        CHECK(n2 == n);
                }
        }

        r = conf_parse_save_path(s, &dir, &depth);
        CHECK(r == 0 || r == -EINVAL);
        if (r == 0) {
                CHECK(dir >= s && dir <= s + strlen(s));
                CHECK(depth <= 9);
        }

        r = conf_parse_port(s, &port);
        CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
        CHECK(r != 0 || port >= 1);

        r = conf_parse_log_level(s, &level);
        CHECK(r == 0 || r == -EINVAL);
        CHECK(r != 0 || level == CONF_LOG_ERROR || level == CONF_LOG_WARN || level == CONF_LOG_INFO ||
              level == CONF_LOG_DEBUG);

        if (conf_token_valid(s, CONF_NODE_MAX, CONF_NODE_EXTRA))
                CHECK(strlen(s) >= 1 && strlen(s) <= CONF_NODE_MAX && strspn(s,
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(s));
        free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_load(data, size);
        if (size <= 256)
                fuzz_values(data, size);
        return 0;
}
