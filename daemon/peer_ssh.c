#include "daemon/peer_ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log.h"
#include "lib/conf.h"
#include "lib/knownhosts.h"

enum step {
        ST_RESOLVE,
        ST_CONNECT,
        ST_HANDSHAKE,
        ST_AUTH,
        ST_CHANNEL,
        ST_EXEC,
        ST_READY,
        ST_FAILED,
};

struct peer_ssh {
        const struct conf *conf;
        const struct conf_peer *cp;
        enum step step;
        int fd;
        bool want_out;                  /* during connect() */
        bool drain;                     /* --full-sync: peer_ssh_set_drain */
        struct gaicb gai;
        struct gaicb *gai_list[1];
        struct addrinfo hints;
        char service[8];
        bool gai_started;
        struct addrinfo *ai;            /* owned when set */
        LIBSSH2_SESSION *ssh;
        LIBSSH2_CHANNEL *ch;
        char name[KNOWNHOSTS_MAX_NAME]; /* "host" or "[host]:port", as known_hosts says */
        char *kh;                       /* known_hosts, owned, from connect to the key check */
        size_t kh_len;
        unsigned kh_line;               /* the line that matched */
        char err[512];
        char errline[512];              /* partial stderr line */
        size_t errlen;
};

static int fail(struct peer_ssh *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct peer_ssh *s, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s->err, sizeof(s->err), fmt, ap);
        va_end(ap);
        s->step = ST_FAILED;
        return -ECONNABORTED;
}

static const char *ssh_err(struct peer_ssh *s) {
        char *msg = NULL;

        if (!s->ssh)
                return "unknown error";
        libssh2_session_last_error(s->ssh, &msg, NULL, 0);
        return msg && *msg ? msg : "unknown libssh2 error";
}

void peer_ssh_set_drain(struct peer_ssh *s) {
        s->drain = true;
}

int peer_ssh_new(const struct conf *c, const struct conf_peer *cp, struct peer_ssh **ret) {
        struct peer_ssh *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->conf = c;
        s->cp = cp;
        s->fd = -1;
        s->step = ST_RESOLVE;
        snprintf(s->service, sizeof(s->service), "%u", cp->port);
        if (knownhosts_name(cp->host, cp->port, s->name, sizeof(s->name)) < 0)
                snprintf(s->name, sizeof(s->name), "%s", cp->host);   /* conf caps a host at 255 */
        *ret = s;
        return 0;
}

void peer_ssh_free(struct peer_ssh *s) {
        if (!s)
                return;
        if (s->ch && libssh2_channel_free(s->ch) == 0)
                s->ch = NULL;
        if (s->ssh) {
                /* Non-blocking: a polite disconnect if it goes out at once.
                 * Then the socket is shut, so that in blocking mode every
                 * write fails at once instead of waiting: a non-blocking
                 * free that meets EAGAIN returns without freeing (55 KB per
                 * session, on every reconnect). The session frees the
                 * channel if channel_free could not. */
                (void)libssh2_session_disconnect(s->ssh, "sessyncd closing");
                if (s->fd >= 0)
                        (void)shutdown(s->fd, SHUT_RDWR);
                libssh2_session_set_blocking(s->ssh, 1);
                (void)libssh2_session_free(s->ssh);
        }
        if (s->fd >= 0)
                close(s->fd);
        free(s->kh);
        if (s->gai_started && gai_cancel(&s->gai) == EAI_NOTCANCELED) {
                /* The resolver thread still owns the request: it must outlive
                 * us. Rare (a free during a DNS lookup); leak it. */
                return;
        }
        if (s->gai_started && s->gai.ar_result)
                freeaddrinfo(s->gai.ar_result);
        else if (s->ai)
                freeaddrinfo(s->ai);
        free(s);
}

static int step_resolve(struct peer_ssh *s) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
        int r;

        if (!s->gai_started) {
                if (getaddrinfo(s->cp->host, s->service, &hints, &s->ai) == 0)
                        return 0;
                s->hints = (struct addrinfo){ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                              .ai_flags = AI_NUMERICSERV };
                s->gai = (struct gaicb){ .ar_name = s->cp->host, .ar_service = s->service,
                                         .ar_request = &s->hints };
                s->gai_list[0] = &s->gai;
                if (getaddrinfo_a(GAI_NOWAIT, s->gai_list, 1, NULL) != 0)
                        return fail(s, "cannot resolve \"%s\"", s->cp->host);
                s->gai_started = true;
        }
        r = gai_error(&s->gai);
        if (r == EAI_INPROGRESS)
                return -EAGAIN;
        if (r != 0)
                return fail(s, "cannot resolve \"%s\": %s", s->cp->host, gai_strerror(r));
        s->ai = s->gai.ar_result;
        return 0;
}

static int step_connect(struct peer_ssh *s) {
        int one = 1, err = 0;
        socklen_t len = sizeof(err);

        if (s->fd < 0) {
                s->fd = socket(s->ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (s->fd < 0)
                        return fail(s, "socket: %s", strerror(errno));
                (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                (void)setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
                if (connect(s->fd, s->ai->ai_addr, s->ai->ai_addrlen) == 0)
                        return 0;
                if (errno != EINPROGRESS)
                        return fail(s, "connect to %s: %s", s->cp->host, strerror(errno));
                s->want_out = true;
                return -EAGAIN;
        }
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        if (err == EINPROGRESS || err == EALREADY)
                return -EAGAIN;
        s->want_out = false;
        if (err)
                return fail(s, "connect to %s: %s", s->cp->host, strerror(err));
        return 0;
}

/* docs/DESIGN.md "Peers and keys": what we offer is OpenSSH's current
 * client defaults without SHA-1, CBC, arcfour, 3DES or MD5, and without
 * chacha20-poly1305 and the -etm MACs, which Terrapin (CVE-2023-48795) can
 * truncate when strict KEX is not negotiated. method_pref() below
 * drops the names the linked libssh2 does not implement (1.10: no
 * sntrup/mlkem, no GCM, no strict KEX), and fails only if none is left.
 * The two pseudo-algorithms at the end of the KEX list turn on server
 * signature negotiation and strict KEX in a libssh2 that has them (1.11.1):
 * with a pref list set, libssh2 offers nothing that is not on it. */
static const char kex_algos[] =
        "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,"
        "curve25519-sha256,curve25519-sha256@libssh.org,"
        "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
        "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,"
        "diffie-hellman-group14-sha256,"
        "ext-info-c,kex-strict-c-v00@openssh.com";
static const char cipher_algos[] =
        "aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com";
static const char mac_algos[] = "hmac-sha2-256,hmac-sha2-512";

/* Host-key algorithms in OpenSSH's order, by the known_hosts key type they
 * verify. RSA only with SHA-2 signatures (OpenSSH 8.8 dropped ssh-rsa);
 * DSA never; certificates never (libssh2 checks no CA). */
static const struct {
        unsigned type;
        const char *algos;
} hostkey_algos[] = {
        { KNOWNHOSTS_ED25519, "ssh-ed25519" },
        { KNOWNHOSTS_ECDSA256, "ecdsa-sha2-nistp256" },
        { KNOWNHOSTS_ECDSA384, "ecdsa-sha2-nistp384" },
        { KNOWNHOSTS_ECDSA521, "ecdsa-sha2-nistp521" },
        { KNOWNHOSTS_RSA, "rsa-sha2-512,rsa-sha2-256" },
};

/* The host-key algorithms for the key types known_hosts holds for this
 * host, so a server with several host keys presents one we can check; all
 * of them when it holds none (the check then refuses, naming the key). */
static void hostkey_prefs(unsigned types, char *buf, size_t size) {
        buf[0] = 0;
        for (size_t i = 0; i < sizeof(hostkey_algos) / sizeof(hostkey_algos[0]); i++) {
                if (types && !(types & hostkey_algos[i].type))
                        continue;
                if (buf[0])
                        strncat(buf, ",", size - strlen(buf) - 1);
                strncat(buf, hostkey_algos[i].algos, size - strlen(buf) - 1);
        }
}

/* libssh2_session_method_pref() with only the names this libssh2
 * implements: 1.10 drops the others itself with an overlapping memcpy()
 * (undefined behaviour: ASan aborts at the first connect, and a memcpy
 * that copies backwards would garble the list we offer). <0 if none is
 * left or libssh2 fails. */
static int method_pref(LIBSSH2_SESSION *ssh, int method, const char *algos) {
        char buf[1024];
        const char **have = NULL;
        size_t len = 0;
        int n, r;

        n = libssh2_session_supported_algs(ssh, method, &have);
        if (n < 0)
                return n;
        buf[0] = 0;
        for (const char *p = algos; *p;) {
                size_t l = strcspn(p, ",");

                for (int i = 0; i < n; i++) {
                        if (strlen(have[i]) == l && memcmp(have[i], p, l) == 0 && len + l + 2 < sizeof(buf)) {
                                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%.*s", len ? "," : "",
                                                        (int)l, p);
                                break;
                        }
                }
                p += l + (p[l] == ',');
        }
        libssh2_free(ssh, have);
        r = buf[0] ? libssh2_session_method_pref(ssh, method, buf) : LIBSSH2_ERROR_METHOD_NOT_SUPPORTED;
        return r < 0 ? r : 0;
}

static int set_prefs(struct peer_ssh *s) {
        static const struct {
                int method;
                const char *what;
                const char *algos;
        } fixed[] = {
                { LIBSSH2_METHOD_KEX, "key exchange", kex_algos },
                { LIBSSH2_METHOD_CRYPT_CS, "cipher", cipher_algos },
                { LIBSSH2_METHOD_CRYPT_SC, "cipher", cipher_algos },
                { LIBSSH2_METHOD_MAC_CS, "MAC", mac_algos },
                { LIBSSH2_METHOD_MAC_SC, "MAC", mac_algos },
        };
        struct knownhosts_result res;
        char hostkeys[256];
        int r;

        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
                if (method_pref(s->ssh, fixed[i].method, fixed[i].algos) < 0)
                        return fail(s, "libssh2 %s implements no %s algorithm sessyncd accepts (%s)",
                                    libssh2_version(0), fixed[i].what, fixed[i].algos);
        r = knownhosts_check(s->kh, s->kh_len, s->cp->host, s->cp->port, NULL, 0, &res);
        if (r < 0)
                return fail(s, "cannot look %s up in known_hosts \"%s\": %s", s->name, s->conf->known_hosts,
                            strerror(-r));
        hostkey_prefs(res.types, hostkeys, sizeof(hostkeys));
        if (!hostkeys[0] || method_pref(s->ssh, LIBSSH2_METHOD_HOSTKEY, hostkeys) < 0)
                return fail(s, "known_hosts \"%s\" holds for %s only keys libssh2 %s cannot check without SHA-1 "
                               "or DSA (%s): refusing; add its ed25519 or ECDSA key (ssh-keyscan -t ed25519)",
                            s->conf->known_hosts, s->name, libssh2_version(0), hostkeys[0] ? hostkeys : "ssh-dss");
        return 0;
}

/* " (HINT)" for a key known_hosts does not hold: a line that names the
 * host but cannot be used, a @cert-authority line, a line for port 22 only. */
static void notfound_hints(struct peer_ssh *s, const struct knownhosts_result *res, const uint8_t *key,
                           size_t len, char *buf, size_t size) {
        struct knownhosts_result bare;
        size_t n = 0;

        buf[0] = 0;
        if (res->bad_line)
                n += (size_t)snprintf(buf + n, size - n, "; line %u names it but cannot be used: %s", res->bad_line,
                                      res->bad_why);
        if (res->ca_line && n < size)
                n += (size_t)snprintf(buf + n, size - n, "; line %u is @cert-authority, which sessyncd does not "
                                      "trust (no host certificates)", res->ca_line);
        if (s->cp->port != 22 && n < size &&
            knownhosts_check(s->kh, s->kh_len, s->cp->host, 22, key, len, &bare) == 0 &&
            bare.verdict == KNOWNHOSTS_MATCH)
                (void)snprintf(buf + n, size - n, "; line %u has this key for %s on port 22 only: for port %u "
                               "the line must name %s, as OpenSSH's does", bare.line, s->cp->host, s->cp->port,
                               s->name);
}

static int check_host_key(struct peer_ssh *s) {
        struct knownhosts_result res;
        const char *kh = s->conf->known_hosts;
        char fp[KNOWNHOSTS_FINGERPRINT], hints[400];
        const uint8_t *key;
        size_t len;
        int type, r;

        key = (const uint8_t *)libssh2_session_hostkey(s->ssh, &len, &type);
        if (!key || knownhosts_fingerprint(key, len, fp, sizeof(fp)) < 0)
                return fail(s, "%s presented no host key sessyncd can read", s->name);
        r = knownhosts_check(s->kh, s->kh_len, s->cp->host, s->cp->port, key, len, &res);
        if (r < 0)
                return fail(s, "cannot check the host key of %s against %s: %s", s->name, kh, strerror(-r));
        switch (res.verdict) {
        case KNOWNHOSTS_MATCH:
                s->kh_line = res.line;
                return 0;
        case KNOWNHOSTS_REVOKED:
                return fail(s, "host key of %s (%s) is REVOKED by %s:%u (@revoked): refusing", s->name, fp, kh,
                            res.line);
        case KNOWNHOSTS_CHANGED:
                return fail(s, "HOST KEY OF %s HAS CHANGED (possible man-in-the-middle): it presents %s, %s:%u "
                               "holds another; refusing; if the change is expected, replace that line",
                            s->name, fp, kh, res.line);
        case KNOWNHOSTS_NOTFOUND:
        default:
                notfound_hints(s, &res, key, len, hints, sizeof(hints));
                return fail(s, "no host key for %s in %s: refusing; it presents %s, add it (ssh-keyscan) after "
                               "checking that fingerprint%s", s->name, kh, fp, hints);
        }
}

/* After the handshake: the algorithms agreed, for the log. */
static void log_methods(struct peer_ssh *s) {
        const char *kex = libssh2_session_methods(s->ssh, LIBSSH2_METHOD_KEX);
        const char *hk = libssh2_session_methods(s->ssh, LIBSSH2_METHOD_HOSTKEY);
        const char *cs = libssh2_session_methods(s->ssh, LIBSSH2_METHOD_CRYPT_CS);
        const char *mac = libssh2_session_methods(s->ssh, LIBSSH2_METHOD_MAC_CS);

        log_info("peer \"%s\": SSH to %s: kex %s, %s key matching %s:%u, cipher %s, MAC %s", s->cp->name, s->name,
                 kex ? kex : "?", hk ? hk : "?", s->conf->known_hosts, s->kh_line, cs ? cs : "?", mac ? mac : "?");
}

static int step_handshake(struct peer_ssh *s) {
        int r;

        if (!s->ssh) {
                /* Read once per connection: a fixed file takes effect at the next retry. */
                if ((r = knownhosts_read(s->conf->known_hosts, &s->kh, &s->kh_len)) < 0)
                        return fail(s, "cannot read known_hosts \"%s\": %s", s->conf->known_hosts,
                                    r == -EFBIG ? "larger than 4 MiB" : strerror(-r));
                s->ssh = libssh2_session_init();
                if (!s->ssh)
                        return fail(s, "libssh2: out of memory");
                libssh2_session_set_blocking(s->ssh, 0);
                if ((r = set_prefs(s)) < 0)
                        return r;
        }
        r = libssh2_session_handshake(s->ssh, s->fd);
        if (r == LIBSSH2_ERROR_EAGAIN)
                return -EAGAIN;
        if (r == LIBSSH2_ERROR_KEX_FAILURE)
                return fail(s, "SSH handshake with %s failed: key exchange failed, most often no algorithm in common "
                               "(sessyncd offers only current ones, docs/DESIGN.md \"Peers and keys\"; the peer's "
                               "sshd log says what each side offered): %s", s->name, ssh_err(s));
        if (r < 0)
                return fail(s, "SSH handshake with %s failed: %s", s->name, ssh_err(s));
        r = check_host_key(s);
        free(s->kh);
        s->kh = NULL;
        if (r == 0)
                log_methods(s);
        return r;
}

/* At start: every line of known_hosts that cannot be used as written,
 * with its file:line, so a @cert-authority or a typo is seen before the
 * first connection is refused (docs/DESIGN.md "Peers and keys"). */
static void report_note(void *ctx, unsigned line, const char *why) {
        log_warn("%s:%u: %s", (const char *)ctx, line, why);
}

void peer_ssh_report(const struct conf *c) {
        char *text = NULL;
        size_t len = 0;
        int r;

        if (!c->n_peers)
                return;
        if ((r = knownhosts_read(c->known_hosts, &text, &len)) < 0) {
                log_warn("known_hosts \"%s\": %s; connections to peers are refused until it can be read",
                         c->known_hosts, r == -EFBIG ? "larger than 4 MiB" : strerror(-r));
                return;
        }
        (void)knownhosts_scan(text, len, report_note, (void *)c->known_hosts);
        free(text);
}

static int step_auth(struct peer_ssh *s) {
        int r = libssh2_userauth_publickey_fromfile_ex(s->ssh, s->cp->user, (unsigned)strlen(s->cp->user),
                                                       s->conf->identity_pub, s->conf->identity, NULL);
        if (r == LIBSSH2_ERROR_EAGAIN)
                return -EAGAIN;
        if (r < 0) {
                return fail(s, "public key authentication as %s@%s failed (is our key in its authorized_keys?): %s",
                            s->cp->user, s->cp->host, ssh_err(s));
        }
        return 0;
}

static int step_channel(struct peer_ssh *s) {
        s->ch = libssh2_channel_open_session(s->ssh);
        if (s->ch)
                return 0;
        if (libssh2_session_last_errno(s->ssh) == LIBSSH2_ERROR_EAGAIN)
                return -EAGAIN;
        return fail(s, "cannot open an SSH channel to %s: %s", s->cp->host, ssh_err(s));
}

static int step_exec(struct peer_ssh *s) {
        /* The forced command ignores what we ask for, but sshd hands it on
         * as SSH_ORIGINAL_COMMAND: "--drain" lets the receiver's --serve
         * apply in place of a daemon that is not running (daemon/relay.c). */
        int r = libssh2_channel_exec(s->ch, s->drain ? "sessyncd --serve --drain" : "sessyncd --serve");

        if (r == LIBSSH2_ERROR_EAGAIN)
                return -EAGAIN;
        if (r < 0)
                return fail(s, "the peer refused to run the command on %s: %s", s->cp->host, ssh_err(s));
        return 0;
}

int peer_ssh_step(struct peer_ssh *s) {
        int r = 0;

        while (r == 0 && s->step != ST_READY) {
                switch (s->step) {
                case ST_RESOLVE: r = step_resolve(s); break;
                case ST_CONNECT: r = step_connect(s); break;
                case ST_HANDSHAKE: r = step_handshake(s); break;
                case ST_AUTH: r = step_auth(s); break;
                case ST_CHANNEL: r = step_channel(s); break;
                case ST_EXEC: r = step_exec(s); break;
                case ST_FAILED: return -ECONNABORTED;
                case ST_READY: break;
                }
                if (r == 0)
                        s->step++;
        }
        return r;
}

int peer_ssh_fd(const struct peer_ssh *s) {
        return s->fd;
}

uint32_t peer_ssh_events(const struct peer_ssh *s) {
        int dir;

        if (s->fd < 0)
                return 0;
        if (s->step == ST_CONNECT)
                return s->want_out ? EPOLLOUT : EPOLLIN;
        if (!s->ssh)
                return EPOLLIN;
        dir = libssh2_session_block_directions(s->ssh);
        return EPOLLIN | ((dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) ? EPOLLOUT : 0);
}

const char *peer_ssh_error(const struct peer_ssh *s) {
        return s->err[0] ? s->err : "no error";
}

ssize_t peer_ssh_read(struct peer_ssh *s, void *buf, size_t len) {
        ssize_t n = libssh2_channel_read(s->ch, buf, len);

        if (n == LIBSSH2_ERROR_EAGAIN)
                return -EAGAIN;
        if (n < 0) {
                fail(s, "reading from %s: %s", s->cp->host, ssh_err(s));
                return -ECONNRESET;
        }
        if (n == 0 && !libssh2_channel_eof(s->ch))
                return -EAGAIN;
        return n;
}

ssize_t peer_ssh_write(struct peer_ssh *s, const void *buf, size_t len) {
        ssize_t n = libssh2_channel_write(s->ch, buf, len);

        if (n == LIBSSH2_ERROR_EAGAIN)
                return -EAGAIN;
        if (n < 0) {
                fail(s, "writing to %s: %s", s->cp->host, ssh_err(s));
                return -ECONNRESET;
        }
        return n;
}

void peer_ssh_stderr(struct peer_ssh *s, void (*line_cb)(void *ctx, const char *line), void *ctx) {
        char buf[1024];
        size_t budget = 64u << 10;   /* a peer that floods it must not hold the loop */
        ssize_t n;

        if (!s->ch)
                return;
        while (budget >= sizeof(buf) && (n = libssh2_channel_read_stderr(s->ch, buf, sizeof(buf))) > 0) {
                budget -= (size_t)n;
                for (ssize_t i = 0; i < n; i++) {
                        if (buf[i] == '\n' || s->errlen == sizeof(s->errline) - 1) {
                                s->errline[s->errlen] = 0;
                                if (s->errlen)
                                        line_cb(ctx, s->errline);
                                s->errlen = 0;
                                if (buf[i] == '\n')
                                        continue;
                        }
                        s->errline[s->errlen++] = buf[i];
                }
        }
}

void peer_ssh_set_conf(struct peer_ssh *s, const struct conf *c, const struct conf_peer *cp) {
        s->conf = c;
        s->cp = cp;
}
