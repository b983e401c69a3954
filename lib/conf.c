/* The configuration file (docs/DESIGN.md "Interface"), read with inih.
 *
 * inih as Debian builds it passes no line number to the handler and reads
 * into a 200-byte buffer, splitting longer lines silently. So inih reads
 * through our own line reader (ini_parse_stream): it counts lines, so every
 * error can name FILE:LINE; it sees each raw line, so it refuses over-long
 * lines and NUL bytes instead of letting them be cut; and it handles the
 * structure itself ([section] headers, lines without "="), so that every
 * problem is reported, not only the first one inih would return. inih then
 * only splits "key = value" and strips inline " ;" comments.
 *
 * The reader also strips leading blanks: inih would take an indented line as
 * the continuation of the previous value (Python's configparser style), and
 * an operator who indents a key means a key.
 */
#include "lib/conf.h"
#include "lib/conf_int.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lib/sess.h"
#include "proto/msg.h"

#define FILE_MAX (1u << 20)             /* a config is a few hundred bytes; this stops -c /dev/zero */
#define RAW_MAX 1024                    /* more than inih's line; the rest of a line is only counted */
#define FILE_SIZE_MAX (15ull << 20)     /* a whole session file must fit in one frame */
#define DURATION_MAX_MS (3650ull * 86400 * 1000) /* keeps "now + ttl" in ns far from overflow */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define LABEL_MAX (RAW_MAX + 8)

_Static_assert(FILE_SIZE_MAX <= PROTO_DATA_MAX, "max_file_size must fit in a frame");
_Static_assert(SUN_PATH_MAX == 107, "the message about socket paths says 107");


/* V_PREFIX, V_HOST, V_USER. None may start with "-". A host is a name or an
 * address for getaddrinfo(), IPv6 without brackets. */
static const struct token { size_t max; const char *extra, *why; } tokens[] = {
        { 32, "_.-", "is not a session prefix (1 to 32 of A-Z a-z 0-9 _ . -)" },
        { 255, "._:%-", "is not a host name or address" },
        { 32, "._-", "is not a user name" },
};


/* In the order of node_keys[]; the first NK_N_REQUIRED are required. */
enum node_key {
        NK_NAME, NK_SESSION_DIR, NK_STATE_DIR, NK_SOCKET, NK_IDENTITY, NK_KNOWN_HOSTS,
        NK_SESSION_PREFIX, NK_MAX_FILE_SIZE, NK_SESSION_LIFETIME, NK_TOMBSTONE_TTL,
        NK_CLOCK_SKEW_WARN, NK_LOG_LEVEL, NK_METRICS_FILE, NK_RESYNC_INTERVAL, NK_PHP_USER, NK_READY_TIMEOUT, NK_HEALTH_LISTEN, NK_SESSION_FORMAT, N_NODE_KEYS,
        NK_N_REQUIRED = NK_SESSION_PREFIX,
};
#define NODE(n, t, f) { n, t, offsetof(struct conf, f) }
static const struct key node_keys[N_NODE_KEYS] = {
        NODE("name", V_NODE_NAME, name), NODE("session_dir", V_SAVE_PATH, session_dir),
        NODE("state_dir", V_PATH, state_dir), NODE("socket", V_SOCKET, socket),
        NODE("identity", V_PATH, identity), NODE("known_hosts", V_PATH, known_hosts),
        NODE("session_prefix", V_PREFIX, session_prefix), NODE("max_file_size", V_SIZE, max_file_size),
        NODE("session_lifetime", V_DURATION, session_lifetime_ms),
        NODE("tombstone_ttl", V_DURATION, tombstone_ttl_ms),
        NODE("clock_skew_warn", V_DURATION, clock_skew_warn_ms), NODE("log_level", V_LEVEL, log_level),
        NODE("metrics_file", V_PATH, metrics_file),
        NODE("resync_interval", V_DURATION, resync_interval_ms),
        NODE("php_user", V_USER, php_user),
        NODE("ready_timeout", V_DURATION, ready_timeout_ms),
        NODE("health_listen", V_LISTEN, health_listen),
        NODE("session_format", V_FORMAT, session_format),
};
/* The [node] keys a running daemon takes on SIGHUP (docs/DESIGN.md
 * "Reload"). The others shape objects built once at start (the directory and
 * its watch, the state lock, the socket, the health listener, which files are
 * sessions and whose): a new key is read at start only until it is listed. */
static const bool node_key_live[N_NODE_KEYS] = {
        [NK_IDENTITY] = true,       [NK_KNOWN_HOSTS] = true,   [NK_MAX_FILE_SIZE] = true,
        [NK_SESSION_LIFETIME] = true, [NK_TOMBSTONE_TTL] = true, [NK_CLOCK_SKEW_WARN] = true,
        [NK_LOG_LEVEL] = true,      [NK_METRICS_FILE] = true,  [NK_RESYNC_INTERVAL] = true,
        [NK_READY_TIMEOUT] = true,
};
enum peer_key { PK_HOST, PK_PORT, PK_USER, N_PEER_KEYS };
#define PEER(n, t, f) { n, t, offsetof(struct conf_peer, f) }
static const struct key peer_keys[N_PEER_KEYS] = {
        PEER("host", V_HOST, host), PEER("port", V_PORT, port), PEER("user", V_USER, user),
};

enum sect { SECT_NONE, SECT_NODE, SECT_PEER, SECT_SKIP };

struct parse {
        const char *path;
        FILE *in;
        FILE *err;                      /* open_memstream: the error text */
        unsigned n_errors;
        bool oom;
        int read_err;                   /* negative errno from reading the file */
        bool too_big;
        size_t bytes;
        int line;                       /* the line inih is handling now */
        struct conf *c;
        size_t peers_cap;
        enum sect sect;
        char label[LABEL_MAX];          /* the current section as written: "node", "peer web2" */
        int node_line;                  /* line of [node], 0 if none yet */
        int node_seen[N_NODE_KEYS];     /* line each key was set on, 0 if not */
        unsigned node_bad;              /* bit per key whose value was refused */
        int peer_seen[N_PEER_KEYS];     /* the same, for the current peer */
};

__attribute__((format(printf, 4, 5)))
static void error_at(struct parse *p, int line, const char *key, const char *fmt, ...) {
        va_list ap;

        p->n_errors++;
        fprintf(p->err, "%s:%d: %s: ", p->path, line, key);
        va_start(ap, fmt);
        vfprintf(p->err, fmt, ap);
        va_end(ap);
        fputc('\n', p->err);
}

/* The KEY of an error that belongs to no key: the section, else "line". */
static const char *where(const struct parse *p) {
        return p->label[0] ? p->label : "line";
}

static void set_str(struct parse *p, char **field, const char *v) {
        char *s = strdup(v);

        if (!s) {
                p->oom = true; /* conf_load fails with -ENOMEM */
                return;
        }
        free(*field);
        *field = s;
}

/* Store v in obj (the conf or the current peer). Returns NULL, or why v is
 * refused, to follow the quoted value in the error. */
static const char *set_value(struct parse *p, const struct key *k, char *obj, const char *v) {
        void *field = obj + k->off;
        const struct token *tok;
        const char *dir = v;
        unsigned depth = 0;
        uint64_t n = 0;
        int r;

        switch (k->type) {
        case V_NODE_NAME:
                if (!conf_token_valid(v, CONF_NODE_MAX, CONF_NODE_EXTRA))
                        return "is not a node name (1 to 64 of A-Z a-z 0-9 . _ -)";
                strcpy(field, v);
                return NULL;
        case V_SAVE_PATH:
                if (conf_parse_save_path(v, &dir, &depth) < 0)
                        return "is not \"/path\", \"N;/path\" or \"N;MODE;/path\" (N 0 to 9, MODE octal)";
                p->c->session_depth = depth;
                /* fall through */
        case V_PATH:
        case V_SOCKET:
                if (dir[0] != '/')
                        return "is not an absolute path";
                if (k->type == V_SOCKET && strlen(v) > SUN_PATH_MAX)
                        return "is longer than 107 bytes, the limit of a unix socket path";
                break;
        case V_PREFIX:
        case V_HOST:
        case V_USER:
                tok = &tokens[k->type - V_PREFIX];
                if (v[0] == '-' || !conf_token_valid(v, tok->max, tok->extra))
                        return tok->why;
                break;
        case V_SIZE:
                if ((r = conf_parse_size(v, &n)) == -EINVAL)
                        return "is not a size (use 512, 64K or 1M)";
                if (r < 0 || n < 1 || n > FILE_SIZE_MAX)
                        return "is out of range (1 to 15M)";
                *(uint64_t *)field = n;
                return NULL;
        case V_DURATION:
                if ((r = conf_parse_duration(v, &n)) == -EINVAL)
                        return "is not a duration (use 30s, 24m, 24h or 7d)";
                if (r < 0 || n < 1000 || n > DURATION_MAX_MS)
                        return "is out of range (1s to 3650d)";
                *(uint64_t *)field = n;
                return NULL;
        case V_LEVEL:
                return conf_parse_log_level(v, field) < 0 ? "is not error, warn, info or debug" : NULL;
        case V_FORMAT:
                return conf_parse_format(v, field) < 0 ? "is not php, laravel or codeigniter4" : NULL;
        case V_PORT:
                return conf_parse_port(v, field) < 0 ? "is not a port (1 to 65535)" : NULL;
        case V_LISTEN:
                if (conf_parse_listen(v, NULL, 0, NULL) < 0)
                        return "is not ADDRESS:PORT (an IPv4 address, or [IPv6]; port 1 to 65535)";
                break;
        }
        set_str(p, field, dir);
        return NULL;
}

static int key_index(const struct key *keys, int n, const char *name) {
        for (int i = 0; i < n; i++)
                if (strcmp(keys[i].name, name) == 0)
                        return i;
        return -1;
}

/* inih's handler, called right after the reader returned the line. Always
 * returns 1: errors are collected here, and inih goes on either way. */
static int on_key(void *user, const char *section, const char *name, const char *value) {
        struct parse *p = user;
        bool node = p->sect == SECT_NODE;
        const char *why = NULL;
        size_t len = strlen(value);
        int k, *seen;

        (void)section; /* tracked by the reader, which sees the raw header */
        if (p->sect == SECT_SKIP)
                return 1; /* the header was refused; its keys would only add noise */
        if (!name[0]) {
                error_at(p, p->line, where(p), "a line starts with \"=\": the key name is missing");
                return 1;
        }
        if (p->sect == SECT_NONE) {
                error_at(p, p->line, name, "outside any section (keys go under [node] or [peer NAME])");
                return 1;
        }
        k = node ? key_index(node_keys, N_NODE_KEYS, name) : key_index(peer_keys, N_PEER_KEYS, name);
        if (k < 0) {
                bool other = node ? key_index(peer_keys, N_PEER_KEYS, name) >= 0
                                  : key_index(node_keys, N_NODE_KEYS, name) >= 0;
                error_at(p, p->line, name, "unknown key in [%s]%s", p->label,
                         !other ? "" : node ? " (it belongs in [peer NAME])" : " (it belongs in [node])");
                return 1;
        }
        seen = node ? &p->node_seen[k] : &p->peer_seen[k];
        if (*seen) {
                error_at(p, p->line, name, "set twice in [%s] (first at line %d)", p->label, *seen);
                return 1;
        }
        *seen = p->line;
        if (len == 0)
                error_at(p, p->line, name, "empty value");
        else if (len >= 2 && value[0] == '"' && value[len - 1] == '"')
                error_at(p, p->line, name, "%s: remove the quotes (values are taken as written)", value);
        else if ((why = node ? set_value(p, &node_keys[k], (char *)p->c, value)
                             : set_value(p, &peer_keys[k], (char *)&p->c->peers[p->c->n_peers - 1], value)))
                error_at(p, p->line, name, "\"%s\" %s", value, why);
        else
                return 1;
        if (node)
                p->node_bad |= 1u << k;
        return 1;
}

static void start_peer(struct parse *p, const char *name) {
        struct conf *c = p->c;
        struct conf_peer *peers;

        for (size_t i = 0; i < c->n_peers; i++)
                if (strcmp(c->peers[i].name, name) == 0) {
                        error_at(p, p->line, p->label, "duplicate section (first at line %d)",
                                 c->peers[i].line);
                        return;
                }
        if (c->n_peers == p->peers_cap) {
                size_t cap = p->peers_cap ? p->peers_cap * 2 : 4;
                if (!(peers = reallocarray(c->peers, cap, sizeof *peers))) {
                        p->oom = true;
                        return;
                }
                c->peers = peers;
                p->peers_cap = cap;
        }
        /* Counted only once zeroed, so conf_free never sees garbage. */
        c->peers[c->n_peers] = (struct conf_peer){ .port = 22, .line = p->line };
        strcpy(c->peers[c->n_peers].name, name);
        c->n_peers++;
        memset(p->peer_seen, 0, sizeof p->peer_seen);
        p->sect = SECT_PEER;
}

/* The end of a [peer NAME] section. A host that was set but refused has
 * been reported already. */
static void end_peer(struct parse *p) {
        if (p->sect == SECT_PEER && !p->peer_seen[PK_HOST])
                error_at(p, p->c->peers[p->c->n_peers - 1].line, "host", "missing in [%s]", p->label);
}

/* s is trimmed and starts with "[". Keys after a refused header are skipped. */
static void on_header(struct parse *p, char *s) {
        char *close = strchr(s, ']'), *rest;

        end_peer(p);
        p->sect = SECT_SKIP;
        if (close)
                *close = '\0';
        snprintf(p->label, sizeof p->label, "%s", s[1] ? s + 1 : "[]");
        if (!close) {
                error_at(p, p->line, p->label, "the section header has no \"]\"");
                return;
        }
        for (rest = close + 1; *rest == ' ' || *rest == '\t'; rest++)
                ;
        if (*rest && *rest != ';' && *rest != '#') {
                error_at(p, p->line, p->label, "text after \"]\"");
        } else if (strcmp(p->label, "node") == 0) {
                if (p->node_line) {
                        error_at(p, p->line, p->label, "duplicate section (first at line %d)", p->node_line);
                        return;
                }
                p->node_line = p->line;
                p->sect = SECT_NODE;
        } else if (strncmp(p->label, "peer ", 5) == 0 &&
                   conf_token_valid(p->label + 5, CONF_NODE_MAX, CONF_NODE_EXTRA)) {
                start_peer(p, p->label + 5);
        } else if (strncmp(p->label, "peer", 4) == 0) {
                error_at(p, p->line, p->label,
                         "not [peer NAME] (one space, NAME 1 to 64 of A-Z a-z 0-9 . _ -)");
        } else {
                error_at(p, p->line, p->label, "unknown section (use [node] or [peer NAME])");
        }
}

/* inih's fgets: hands over one line per call, so inih's line count and ours
 * agree, and handles what inih cannot report (see the top of the file). A
 * line inih must not see goes over as an empty line. */
static char *reader(char *str, int num, void *stream) {
        struct parse *p = stream;
        char raw[RAW_MAX], *s, *e;
        size_t len = 0, limit = (size_t)num - 1 < RAW_MAX - 1 ? (size_t)num - 1 : RAW_MAX - 1;
        bool nul = false, was_space = false;
        int ch;

        while ((ch = getc(p->in)) != EOF && ch != '\n') {
                if (++p->bytes > FILE_MAX) {
                        p->too_big = true;
                        return NULL;
                }
                nul |= ch == '\0';
                if (len < RAW_MAX - 1)
                        raw[len] = (char)ch;
                len++;
        }
        if (ch == EOF && ferror(p->in)) {
                p->read_err = errno ? -errno : -EIO;
                return NULL;
        }
        if (ch == EOF && len == 0)
                return NULL;
        p->bytes++;
        p->line++;
        if (len > 0 && len <= RAW_MAX - 1 && raw[len - 1] == '\r')
                len--; /* CRLF */
        raw[len < RAW_MAX - 1 ? len : RAW_MAX - 1] = '\0';
        s = raw;
        if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
                s += 3; /* UTF-8 BOM */
        while (*s == ' ' || *s == '\t')
                s++;
        for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'); e--)
                ;
        *e = '\0';
        str[0] = '\0';
        if (nul) {
                error_at(p, p->line, where(p), "the line holds a NUL byte");
        } else if (len > limit) {
                error_at(p, p->line, where(p), "the line is %zu characters long, at most %zu are allowed",
                         len, limit);
        } else if (s[0] == '[') {
                on_header(p, s);
        } else if (s[0] && s[0] != ';' && s[0] != '#') {
                /* inih's rule: "=" or ":" before any " ;" comment */
                for (e = s; *e && *e != '=' && *e != ':' && !(was_space && *e == ';'); e++)
                        was_space = *e == ' ' || *e == '\t';
                if (*e == '=' || *e == ':')
                        strcpy(str, s);
                else
                        error_at(p, p->line, where(p), "\"%s\" is not \"key = value\" or a [section]", s);
        }
        return str;
}

static void finish(struct parse *p) {
        struct conf *c = p->c;
        char key[LABEL_MAX], a[32], b[32];
        unsigned durs = 1u << NK_SESSION_LIFETIME | 1u << NK_TOMBSTONE_TTL;

        end_peer(p);
        /* Each framework's own names and default lifetime (docs/DESIGN.md
         * "Session names"): Laravel's config/session.php lifetime is 120
         * minutes, CodeIgniter 4's sessionExpiration 7200 s, PHP's
         * gc_maxlifetime 1440 s. */
        if (c->session_format == SESS_FORMAT_LARAVEL) {
                if (p->node_seen[NK_SESSION_PREFIX])
                        error_at(p, p->node_seen[NK_SESSION_PREFIX], "session_prefix",
                                 "not used with session_format = laravel: Laravel names its files with the bare "
                                 "40-character id; remove the line");
                set_str(p, &c->session_prefix, "");
        }
        if (!p->node_seen[NK_SESSION_LIFETIME])
                c->session_lifetime_ms = c->session_format == SESS_FORMAT_LARAVEL ? 120 * 60 * 1000
                                         : c->session_format == SESS_FORMAT_CI4   ? 7200 * 1000
                                                                                  : 1440 * 1000;
        if (!p->node_line)
                error_at(p, 1, "node", "no [node] section");
        else
                for (int k = 0; k < NK_N_REQUIRED; k++)
                        if (!p->node_seen[k])
                                error_at(p, p->node_line, node_keys[k].name, "missing in [node]");
        for (size_t i = 0; i < c->n_peers; i++) {
                struct conf_peer *peer = &c->peers[i];
                snprintf(key, sizeof key, "peer %s", peer->name);
                if (strcmp(peer->name, c->name) == 0)
                        error_at(p, peer->line, key, "a peer cannot have this node's own name");
                if (!peer->user)
                        set_str(p, &peer->user, "sessync");
        }
        /* A tombstone must outlive every copy of the session it deletes. */
        if (p->node_line && !(p->node_bad & durs) && c->tombstone_ttl_ms <= c->session_lifetime_ms)
                error_at(p, p->node_seen[NK_TOMBSTONE_TTL] ? p->node_seen[NK_TOMBSTONE_TTL]
                                                           : p->node_seen[NK_SESSION_LIFETIME],
                         "tombstone_ttl", "%s%s must be longer than session_lifetime (%s)",
                         conf_format_duration(c->tombstone_ttl_ms, a, sizeof a),
                         p->node_seen[NK_TOMBSTONE_TTL] ? "" : " (the default)",
                         conf_format_duration(c->session_lifetime_ms, b, sizeof b));
        if (!c->session_prefix)
                set_str(p, &c->session_prefix, c->session_format == SESS_FORMAT_CI4 ? "ci_session" : "sess_");
        if (c->identity && asprintf(&c->identity_pub, "%s.pub", c->identity) < 0) {
                c->identity_pub = NULL;
                p->oom = true;
        }
}

/* Read from in (NULL: open path) and validate. The one body of conf_load
 * and conf_load_mem. */
static int load(const char *path, FILE *in, struct conf **ret, char **ret_errors) {
        struct parse p = { .path = path, .in = in };
        struct conf *c = NULL;
        char *errbuf = NULL;
        size_t errlen = 0;
        int r;

        if (!(p.err = open_memstream(&errbuf, &errlen))) {
                r = -ENOMEM;
                goto out;
        }
        if (!(p.c = c = calloc(1, sizeof *c)) || !(c->path = strdup(path))) {
                r = -ENOMEM;
                goto out;
        }
        c->max_file_size = 1ull << 20;
        c->session_lifetime_ms = 1440 * 1000;
        c->tombstone_ttl_ms = 24 * 3600 * 1000;
        c->clock_skew_warn_ms = 2000;
        c->resync_interval_ms = 60000;
        c->ready_timeout_ms = 30000;
        c->log_level = CONF_LOG_INFO;

        if (!p.in && !(p.in = fopen(path, "re"))) {
                r = -errno;
                fprintf(p.err, "%s: %s\n", path, strerror(-r));
                goto out;
        }
        r = ini_parse_stream(reader, &p, on_key, &p);
        if (p.read_err || p.too_big) {
                r = p.read_err ? p.read_err : -EFBIG;
                fprintf(p.err, "%s: %s\n", path,
                        p.too_big ? "larger than 1 MiB, not a sessync config" : strerror(-r));
                goto out;
        }
        if (r > 0 && p.n_errors == 0) /* cannot happen: the reader passes only lines inih accepts */
                error_at(&p, r, where(&p), "syntax error");
        finish(&p);
        if (r == -2 || p.oom || ferror(p.err)) {
                r = -ENOMEM;
                goto out;
        }
        if (p.n_errors > 0) {
                r = -EINVAL;
                goto out;
        }
        *ret = c;
        c = NULL;
        if (ret_errors)
                *ret_errors = NULL;
        r = 0;
out:
        if (p.in && p.in != in)
                fclose(p.in);
        if (p.err && fclose(p.err) == 0 && r < 0 && r != -ENOMEM && ret_errors && errlen > 0) {
                *ret_errors = errbuf;
                errbuf = NULL;
        }
        free(errbuf);
        conf_free(c);
        return r;
}

int conf_load(const char *path, struct conf **ret, char **ret_errors) {
        return load(path, NULL, ret, ret_errors);
}

int conf_load_mem(const char *name, const void *data, size_t len, struct conf **ret, char **ret_errors) {
        FILE *in;
        int r;

        if (ret_errors)
                *ret_errors = NULL;
        if (len == 0)
                in = fopen("/dev/null", "re");   /* fmemopen refuses an empty buffer */
        else
                in = fmemopen((void *)data, len, "r");
        if (!in)
                return -errno;
        r = load(name, in, ret, ret_errors);
        fclose(in);
        return r;
}

void conf_free(struct conf *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_peers; i++) {
                free(c->peers[i].host);
                free(c->peers[i].user);
        }
        free(c->peers);
        free(c->path);
        free(c->session_dir);
        free(c->state_dir);
        free(c->socket);
        free(c->identity);
        free(c->identity_pub);
        free(c->known_hosts);
        free(c->session_prefix);
        free(c->metrics_file);
        free(c->php_user);
        free(c->health_listen);
        free(c);
}

const struct conf_peer *conf_peer_find(const struct conf *c, const char *name) {
        for (size_t i = 0; i < c->n_peers; i++)
                if (strcmp(c->peers[i].name, name) == 0)
                        return &c->peers[i];
        return NULL;
}

const struct key *conf_node_key_table(size_t *ret_n, const bool **ret_live) {
        *ret_n = N_NODE_KEYS;
        *ret_live = node_key_live;
        return node_keys;
}
