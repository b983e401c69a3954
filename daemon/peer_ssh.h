/* One outbound SSH connection to a peer's sshd, non-blocking libssh2 from
 * TCP connect to an exec'd channel (docs/DESIGN.md "Peers and keys").
 *
 * Key exchange, ciphers, MACs and host-key algorithms are pinned to current
 * OpenSSH defaults without SHA-1, CBC, arcfour or MD5. The host key is
 * checked against known_hosts by lib/knownhosts.h (OpenSSH format and
 * matching, re-read on every connect so a fixed file takes effect at the
 * next retry): an unknown, changed or @revoked key refuses the connection,
 * and known_hosts is never written. The host-key algorithms offered are
 * narrowed to the key types known_hosts holds for this host, so a server
 * with several host keys presents the one we can check. Authentication is
 * public key with
 * `identity` (and identity.pub). The command sent is informational: the
 * peer's authorized_keys forces `sessyncd --serve`.
 *
 * Hostnames resolve with getaddrinfo_a, so even DNS does not block the loop.
 */
#ifndef SESSYNC_DAEMON_PEER_SSH_H
#define SESSYNC_DAEMON_PEER_SSH_H

#include <stdint.h>
#include <sys/types.h>

struct conf;
struct conf_peer;
struct peer_ssh;

/* At start: log a warning, as FILE:LINE: why, for every known_hosts line
 * that cannot be used as written (malformed, @cert-authority, unsupported
 * key type), and one if the file cannot be read. Nothing when no peers. */
void peer_ssh_report(const struct conf *c);

int peer_ssh_new(const struct conf *c, const struct conf_peer *cp, struct peer_ssh **ret);
/* A --full-sync connection: ask for "--serve --drain", so that a receiver
 * without a running daemon applies it anyway (docs/DESIGN.md "Inbound
 * connections"). Before the first step. */
void peer_ssh_set_drain(struct peer_ssh *s);
void peer_ssh_free(struct peer_ssh *s);
/* A reload gave the same peer a new config object (docs/DESIGN.md
 * "Reload"): c and cp replace the ones given to peer_ssh_new. */
void peer_ssh_set_conf(struct peer_ssh *s, const struct conf *c, const struct conf_peer *cp);

/* Advance the connection. 0: ready for channel I/O. -EAGAIN: wait for
 * peer_ssh_events() on peer_ssh_fd() (events 0 with fd -1: poll again
 * shortly, name resolution in progress). Other <0: failed; peer_ssh_error()
 * says why, in words an operator can act on. */
int peer_ssh_step(struct peer_ssh *s);
int peer_ssh_fd(const struct peer_ssh *s);
uint32_t peer_ssh_events(const struct peer_ssh *s);
const char *peer_ssh_error(const struct peer_ssh *s);

/* Channel I/O once ready. read: >0 bytes, 0 end of stream, -EAGAIN, <0.
 * write: bytes taken (maybe fewer than len), -EAGAIN, <0. */
ssize_t peer_ssh_read(struct peer_ssh *s, void *buf, size_t len);
ssize_t peer_ssh_write(struct peer_ssh *s, const void *buf, size_t len);
/* The remote command's stderr (e.g. "--serve: cannot reach the daemon"),
 * a line at a time. */
void peer_ssh_stderr(struct peer_ssh *s, void (*line_cb)(void *ctx, const char *line), void *ctx);

#endif
