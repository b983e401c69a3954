/* Logging: one line per event to stderr. Under systemd ($JOURNAL_STREAM
 * set) each line gets a <N> priority prefix so journald records the level;
 * otherwise a timestamp. Only daemon/ logs; lib/ and proto/ return codes.
 * Session names may be logged, session contents never. */
#ifndef SESSYNC_DAEMON_LOG_H
#define SESSYNC_DAEMON_LOG_H

#include "lib/conf.h"

void log_set_level(int level);
int log_get_level(void);
/* The program's name in non-journal lines, e.g. "sessyncd[web1]". */
void log_set_ident(const char *ident);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copy text a peer sent (its ERROR reason, its stderr) into dst as printable
 * ASCII: control bytes and non-ASCII become '?', so a peer can neither forge
 * log lines nor put invalid UTF-8 into --status --json. Returns dst. */
char *log_clean(char *dst, size_t size, const void *src, size_t len);

#define log_error(...) log_msg(CONF_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(CONF_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(CONF_LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
        do { if (log_get_level() >= CONF_LOG_DEBUG) log_msg(CONF_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
