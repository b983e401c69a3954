/* Who runs on a node's state when its daemon is not running
 * (docs/DESIGN.md "Inbound connections"): the daemon, or a `--serve`
 * applying a peer's frames in its place (daemon/standin.c). Both take the
 * state lock (lib/state.h: the writer holds state_dir/lock), so they never
 * run on the directory together. The daemon has priority: before it waits
 * for the state lock it holds state_dir/daemon.lock for its whole life, and
 * a stand-in that sees that lock held hands the state over (ends its turn
 * and exits) within HANDOVER_POLL_MS. Logs (daemon/ only). */
#ifndef SESSYNC_DAEMON_HANDOVER_H
#define SESSYNC_DAEMON_HANDOVER_H

#include <stdbool.h>

#define HANDOVER_POLL_MS 250
/* How long a starting daemon waits for a stand-in to hand over. */
#define HANDOVER_WAIT_MS 30000

/* The daemon, before opening its state: take state_dir/daemon.lock for the
 * process's life. Returns the lock's fd (the caller closes it at exit), or
 * a negative errno: -EBUSY if another daemon holds it (opening the state
 * then fails and says so), -ENOENT if state_dir does not exist yet. */
int handover_claim(const char *state_dir);
/* The daemon, after handover_claim: wait (at most HANDOVER_WAIT_MS) while a
 * stand-in holds the state lock; log that it waits, and for how long it
 * waited. Returns true if the lock is free now. */
bool handover_wait(const char *state_dir);
/* The stand-in: does a daemon hold, or wait for, this state? */
bool handover_wanted(const char *state_dir);
/* Is the state lock held now (by a daemon, a stand-in or a --full-sync)? */
bool handover_state_busy(const char *state_dir);

#endif
