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

#include "lib/conf.h"

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
        *ret = s;
        return 0;
}

void peer_ssh_free(struct peer_ssh *s) {
        if (!s)
                return;
        if (s->ch)
                libssh2_channel_free(s->ch);
        if (s->ssh) {
                /* Non-blocking: a polite disconnect if it goes out at once. */
                (void)libssh2_session_disconnect(s->ssh, "sessyncd closing");
                libssh2_session_free(s->ssh);
        }
        if (s->fd >= 0)
                close(s->fd);
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

/* libssh2 host key type -> known_hosts key type bit and algorithm names. */
static int key_bits(int type, const char **ret_algos) {
        switch (type) {
        case LIBSSH2_HOSTKEY_TYPE_RSA:
                *ret_algos = "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
                return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
        case LIBSSH2_HOSTKEY_TYPE_DSS:
                *ret_algos = "ssh-dss";
                return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
                *ret_algos = "ecdsa-sha2-nistp256";
                return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
                *ret_algos = "ecdsa-sha2-nistp384";
                return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
                *ret_algos = "ecdsa-sha2-nistp521";
                return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
        case LIBSSH2_HOSTKEY_TYPE_ED25519:
                *ret_algos = "ssh-ed25519";
                return LIBSSH2_KNOWNHOST_KEY_ED25519;
        default:
                *ret_algos = NULL;
                return 0;
        }
}

/* The name known_hosts uses for this host: "host" on port 22, else
 * "[host]:port". */
static void kh_name(const struct conf_peer *cp, char *buf, size_t size) {
        if (cp->port == 22)
                snprintf(buf, size, "%s", cp->host);
        else
                snprintf(buf, size, "[%s]:%u", cp->host, cp->port);
}

/* Offer only the host-key algorithms known_hosts can verify for this host
 * (plain entries; hashed ones leave libssh2's default order). */
static void prefer_known_types(struct peer_ssh *s, LIBSSH2_KNOWNHOSTS *kh) {
        static const int order[] = { LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_HOSTKEY_TYPE_ECDSA_256,
                                     LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_HOSTKEY_TYPE_ECDSA_521,
                                     LIBSSH2_HOSTKEY_TYPE_RSA };
        struct libssh2_knownhost *prev = NULL, *cur;
        char name[300], prefs[256] = "";
        bool have[16] = { false };   /* key types are a 4-bit enum, not bits */

        kh_name(s->cp, name, sizeof(name));
        while (libssh2_knownhost_get(kh, &cur, prev) == 0) {
                prev = cur;
                if (cur->name && strcmp(cur->name, name) == 0)
                        have[(cur->typemask & LIBSSH2_KNOWNHOST_KEY_MASK) >> LIBSSH2_KNOWNHOST_KEY_SHIFT] = true;
        }
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
                const char *algos;
                int bit = key_bits(order[i], &algos);

                if (have[(bit & LIBSSH2_KNOWNHOST_KEY_MASK) >> LIBSSH2_KNOWNHOST_KEY_SHIFT]) {
                        if (prefs[0])
                                strncat(prefs, ",", sizeof(prefs) - strlen(prefs) - 1);
                        strncat(prefs, algos, sizeof(prefs) - strlen(prefs) - 1);
                }
        }
        if (prefs[0])
                (void)libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_HOSTKEY, prefs);
}

static int check_host_key(struct peer_ssh *s) {
        LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->ssh);
        struct libssh2_knownhost *found = NULL;
        const char *key, *algos;
        size_t len;
        int type, bits, r;
        char name[300];

        kh_name(s->cp, name, sizeof(name));
        if (!kh)
                return fail(s, "out of memory checking the host key of %s", name);
        if (libssh2_knownhost_readfile(kh, s->conf->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
                libssh2_knownhost_free(kh);
                return fail(s, "cannot read known_hosts \"%s\": %s", s->conf->known_hosts, ssh_err(s));
        }
        key = libssh2_session_hostkey(s->ssh, &len, &type);
        bits = key ? key_bits(type, &algos) : 0;
        if (!key || !bits) {
                libssh2_knownhost_free(kh);
                return fail(s, "%s offered a host key of a type sessyncd cannot check", name);
        }
        r = libssh2_knownhost_checkp(kh, s->cp->host, s->cp->port, key, len,
                                     LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | bits, &found);
        libssh2_knownhost_free(kh);
        switch (r) {
        case LIBSSH2_KNOWNHOST_CHECK_MATCH:
                return 0;
        case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
                return fail(s, "HOST KEY OF %s HAS CHANGED (possible man-in-the-middle): refusing; if the "
                               "change is expected, replace its line in %s", name, s->conf->known_hosts);
        case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
                return fail(s, "no host key for %s in %s: refusing; add it (ssh-keyscan) after checking "
                               "its fingerprint", name, s->conf->known_hosts);
        default:
                return fail(s, "cannot check the host key of %s against %s", name, s->conf->known_hosts);
        }
}

static int step_handshake(struct peer_ssh *s) {
        int r;

        if (!s->ssh) {
                LIBSSH2_KNOWNHOSTS *kh;

                s->ssh = libssh2_session_init();
                if (!s->ssh)
                        return fail(s, "libssh2: out of memory");
                libssh2_session_set_blocking(s->ssh, 0);
                kh = libssh2_knownhost_init(s->ssh);
                if (kh && libssh2_knownhost_readfile(kh, s->conf->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) >= 0)
                        prefer_known_types(s, kh);
                if (kh)
                        libssh2_knownhost_free(kh);
        }
        r = libssh2_session_handshake(s->ssh, s->fd);
        if (r == LIBSSH2_ERROR_EAGAIN)
                return -EAGAIN;
        if (r < 0)
                return fail(s, "SSH handshake with %s failed: %s", s->cp->host, ssh_err(s));
        return check_host_key(s);
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
        ssize_t n;

        if (!s->ch)
                return;
        while ((n = libssh2_channel_read_stderr(s->ch, buf, sizeof(buf))) > 0) {
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
