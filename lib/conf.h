/* The configuration file (docs/DESIGN.md "Interface"): one INI file, parsed with
 * inih, shared by the daemon, --serve and the CLI. Non-logging: problems
 * come back as text for the caller to print. */
#ifndef SESSYNC_LIB_CONF_H
#define SESSYNC_LIB_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_NODE_MAX 64
#define CONF_NODE_EXTRA "._-"   /* a node name: conf_token_valid(s, CONF_NODE_MAX, CONF_NODE_EXTRA) */
#define CONF_DEFAULT_PATH "/etc/sessync/sessync.conf"

enum conf_log_level {
        CONF_LOG_ERROR = 3,     /* syslog priorities, so journald prefixes map 1:1 */
        CONF_LOG_WARN = 4,
        CONF_LOG_INFO = 6,
        CONF_LOG_DEBUG = 7,
};

struct conf_peer {
        char name[CONF_NODE_MAX + 1];   /* the peer's node name: [A-Za-z0-9._-]{1,64} */
        char *host;                     /* required */
        uint16_t port;                  /* default 22 */
        char *user;                     /* default "sessync" */
        int line;                       /* line of its [peer NAME] header */
};

struct conf {
        char *path;                     /* the file it was read from */
        char name[CONF_NODE_MAX + 1];   /* required */
        char *session_dir;              /* required; the directory part of "N;/path" */
        unsigned session_depth;         /* N of PHP's "N;/path" or "N;MODE;/path", else 0 */
        char *state_dir;                /* required */
        char *socket;                   /* required */
        char *identity;                 /* required: private key */
        char *identity_pub;             /* derived: identity + ".pub" */
        char *known_hosts;              /* required */
        uint8_t session_format;         /* enum sess_format (lib/sess.h); key session_format, default php */
        char *session_prefix;           /* php: default "sess_"; codeigniter4: the cookie name, default
                                           "ci_session"; [A-Za-z0-9_.-]{1,32}; laravel: "" (may not be set) */
        uint64_t max_file_size;         /* bytes; default 1M; 1..15M (the wire frame cap) */
        uint64_t session_lifetime_ms;   /* default 1440 s */
        uint64_t tombstone_ttl_ms;      /* default 24h; must be > session_lifetime */
        uint64_t clock_skew_warn_ms;    /* optional key clock_skew_warn, default 2s */
        uint64_t resync_interval_ms;    /* optional key resync_interval, default 60s: periodic catch-up */
        char *health_listen;            /* optional "ADDR:PORT": HAProxy agent-check answers, NULL = none */
        uint64_t ready_timeout_ms;      /* optional key ready_timeout, default 30s: a peer making no progress
                                           this long does not hold readiness */
        int log_level;                  /* enum conf_log_level; default info */
        char *metrics_file;             /* optional; NULL if unset */
        char *php_user;                 /* optional: PHP's user (name or uid); NULL = the daemon's own
                                           user, or for a root daemon the session_dir's owner */

        struct conf_peer *peers;        /* in file order */
        size_t n_peers;
};

/* Read and validate path. On success *ret is a new conf (conf_free) and 0 is
 * returned. On failure returns -EINVAL (invalid content: *ret_errors holds
 * one or more lines "FILE:LINE: KEY: WHY\n", every problem found, not just
 * the first), or another negative errno when the file cannot be read (then
 * *ret_errors says so as "FILE: why\n"). *ret_errors, when set, is owned by
 * the caller (free). */
int conf_load(const char *path, struct conf **ret, char **ret_errors);

/* The same, from len bytes at data (no file is opened; name stands for the
 * file in errors and in c->path). For the fuzzer and tests. */
int conf_load_mem(const char *name, const void *data, size_t len, struct conf **ret, char **ret_errors);

void conf_free(struct conf *c);

/* Look a peer up by node name; NULL if the config has none of that name.
 * The pointer lives as long as c. */
const struct conf_peer *conf_peer_find(const struct conf *c, const char *name);

/* SIGHUP (docs/DESIGN.md "Reload"): for each [node] key whose value differs
 * between old and new, in file order, call fn(ctx, key, live). A key the
 * running daemon cannot take (live false: read at start only) is given old's
 * value in new, so that new says what really runs. Returns 0, or -ENOMEM
 * (new is then half-merged: free it). */
int conf_reload_keep(const struct conf *old, struct conf *new, void (*fn)(void *ctx, const char *key, bool live),
                     void *ctx);
/* Same node name, host, port and user: one connection serves both. */
bool conf_peer_same(const struct conf_peer *a, const struct conf_peer *b);

/* Value parsers, exposed for tests. Return 0 or -EINVAL (or -ERANGE). */
int conf_parse_size(const char *s, uint64_t *ret);       /* "512", "64K", "1M" */
int conf_parse_duration(const char *s, uint64_t *ret_ms); /* "30", "30s", "24m", "24h", "7d" (bare = s) */
/* PHP's session.save_path: "/p", "N;/p" or "N;MODE;/p" (N 0..9, MODE octal
 * <= 7777; like PHP, only the first two ";" split). *ret_dir points into s.
 * The path is not checked here. */
int conf_parse_save_path(const char *s, const char **ret_dir, unsigned *ret_depth);
int conf_parse_port(const char *s, uint16_t *ret);       /* 1..65535 */
/* "192.0.2.1:9777" or "[2001:db8::1]:9777": the address (without
 * brackets) into addr (size bytes, may be NULL with size 0), the port into
 * *ret_port (may be NULL). The address must be numeric (inet_pton). */
int conf_parse_listen(const char *s, char *addr, size_t size, uint16_t *ret_port);
int conf_parse_log_level(const char *s, int *ret);       /* "error", "warn", "info", "debug" */
int conf_parse_format(const char *s, uint8_t *ret);      /* "php", "laravel", "codeigniter4" */
const char *conf_format_name(uint8_t format);            /* the inverse; "?" if out of range */
/* s is 1..max characters, each of [A-Za-z0-9] or in extra. */
bool conf_token_valid(const char *s, size_t max, const char *extra);
/* ms as an operator writes it, in the largest exact unit: "24m", "90s".
 * Returns buf. */
const char *conf_format_duration(uint64_t ms, char *buf, size_t size);

#endif
