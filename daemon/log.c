#include "daemon/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The one mutable global docs/STYLE.md allows: the level, and how to print it. */
static int log_level = CONF_LOG_INFO;
static char log_ident[96] = "sessyncd";

void log_set_level(int level) {
        log_level = level;
}

int log_get_level(void) {
        return log_level;
}

void log_set_ident(const char *ident) {
        snprintf(log_ident, sizeof(log_ident), "%s", ident);
}

static const char *level_word(int level) {
        switch (level) {
        case CONF_LOG_ERROR: return "error";
        case CONF_LOG_WARN: return "warn";
        case CONF_LOG_INFO: return "info";
        default: return "debug";
        }
}

void log_msg(int level, const char *fmt, ...) {
        char line[1024];
        va_list ap;
        int n;

        if (level > log_level)
                return;
        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        /* One write per line so lines of concurrent processes never mix. */
        if (getenv("JOURNAL_STREAM")) {
                fprintf(stderr, "<%d>%s\n", level, line);
        } else {
                struct timespec ts;
                struct tm tm;
                char when[32];

                clock_gettime(CLOCK_REALTIME, &ts);
                localtime_r(&ts.tv_sec, &tm);
                strftime(when, sizeof(when), "%H:%M:%S", &tm);
                fprintf(stderr, "%s.%03ld %s %s: %s\n", when, ts.tv_nsec / 1000000, log_ident,
                        level_word(level), line);
        }
}

char *log_clean(char *dst, size_t size, const void *src, size_t len) {
        const unsigned char *p = src;
        size_t i;

        if (size == 0)
                return dst;
        for (i = 0; i < len && i + 1 < size; i++)
                dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
        dst[i] = 0;
        return dst;
}
