/* SIGHUP: re-read the config file and apply it to the running daemon
 * (daemon/reload.c, docs/DESIGN.md "Reload"). */
#ifndef SESSYNC_DAEMON_RELOAD_H
#define SESSYNC_DAEMON_RELOAD_H

struct daemon;

/* Returns 0 when the new config runs (the caller then re-arms what depends
 * on it), or a negative errno (invalid file, out of memory) when the old one
 * still does. Logs everything itself. */
int reload_config(struct daemon *d);

#endif
