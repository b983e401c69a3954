/* Value parsers of the configuration file (lib/conf.h). Pure functions: no
 * I/O, no allocation, so tests and fuzzers can call them on any string.
 *
 * Numbers are decimal digits only. strtoull alone would accept leading
 * blanks, "+", "-" (wrapping "-1" to UINT64_MAX) and, with base 0, "0x", so
 * the digits are checked before strtoull converts them, and its ERANGE and
 * every multiplication are checked for overflow.
 */
#include "lib/conf.h"
#include "lib/sess.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_digit(char ch) {
        return ch >= '0' && ch <= '9';
}

/* A run of digits at s; *ret_end points past it. */
static int parse_digits(const char *s, const char **ret_end, uint64_t *ret) {
        const char *end = s;
        unsigned long long n;
        char *e;

        while (is_digit(*end))
                end++;
        if (end == s)
                return -EINVAL;
        errno = 0;
        n = strtoull(s, &e, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (e != end)
                return -EINVAL;
        *ret_end = end;
        *ret = n;
        return 0;
}

/* Digits, then nothing (mult[0]) or one of units (mult[1 + index]). */
static int parse_scaled(const char *s, const char *units, const uint64_t *mult, uint64_t *ret) {
        const char *end = s, *unit = NULL;
        uint64_t n = 0, m = mult[0];
        int r;

        while (is_digit(*end))
                end++;
        /* Syntax first: "99999999999999999999X" is not a size, rather than too large. */
        if (end == s || (*end && (!(unit = strchr(units, *end)) || end[1])))
                return -EINVAL;
        if (unit)
                m = mult[unit - units + 1];
        if ((r = parse_digits(s, &end, &n)) < 0)
                return r;
        if (n > UINT64_MAX / m)
                return -ERANGE;
        *ret = n * m;
        return 0;
}

int conf_parse_size(const char *s, uint64_t *ret) {
        static const uint64_t mult[] = { 1, 1ull << 10, 1ull << 20 };
        return parse_scaled(s, "KM", mult, ret);
}

int conf_parse_duration(const char *s, uint64_t *ret_ms) {
        static const uint64_t mult[] = { 1000, 1000, 60 * 1000, 3600 * 1000, 86400 * 1000 };
        return parse_scaled(s, "smhd", mult, ret_ms);
}

/* PHP's files handler (ext/session/mod_files.c) splits save_path at the
 * first two ";" only, so a path may contain more. PHP itself takes any N
 * strtol() makes of the text; we take only a depth that makes sense (each
 * level multiplies the directories by 64). MODE is the mode PHP creates files
 * with: checked for the operator's sake, not kept. */
int conf_parse_save_path(const char *s, const char **ret_dir, unsigned *ret_depth) {
        const char *dir = s, *semi = strchr(s, ';'), *end;
        uint64_t depth = 0, mode = 0;

        if (semi) {
                if (parse_digits(s, &end, &depth) < 0 || end != semi || depth > 9)
                        return -EINVAL;
                dir = semi + 1;
                if ((semi = strchr(dir, ';'))) {
                        for (end = dir; *end >= '0' && *end <= '7' && mode <= 07777; end++)
                                mode = mode * 8 + (uint64_t)(*end - '0');
                        if (end == dir || end != semi || mode > 07777)
                                return -EINVAL;
                        dir = semi + 1;
                }
        }
        *ret_dir = dir;
        *ret_depth = (unsigned)depth;
        return 0;
}

int conf_parse_port(const char *s, uint16_t *ret) {
        const char *end;
        uint64_t n = 0;
        int r;

        if ((r = parse_digits(s, &end, &n)) < 0)
                return r;
        if (*end)
                return -EINVAL;
        if (n < 1 || n > 65535)
                return -ERANGE;
        *ret = (uint16_t)n;
        return 0;
}

int conf_parse_log_level(const char *s, int *ret) {
        static const struct { const char *name; int level; } levels[] = {
                { "error", CONF_LOG_ERROR }, { "warn", CONF_LOG_WARN },
                { "info", CONF_LOG_INFO }, { "debug", CONF_LOG_DEBUG },
        };

        for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
                if (strcmp(s, levels[i].name) == 0) {
                        *ret = levels[i].level;
                        return 0;
                }
        return -EINVAL;
}

static const char *const format_names[] = {
        [SESS_FORMAT_PHP] = "php", [SESS_FORMAT_LARAVEL] = "laravel", [SESS_FORMAT_CI4] = "codeigniter4",
};

int conf_parse_format(const char *s, uint8_t *ret) {
        for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
                if (strcmp(s, format_names[i]) == 0) {
                        *ret = (uint8_t)i;
                        return 0;
                }
        return -EINVAL;
}

const char *conf_format_name(uint8_t format) {
        return format < sizeof format_names / sizeof format_names[0] ? format_names[format] : "?";
}

bool conf_token_valid(const char *s, size_t max, const char *extra) {
        size_t n = strlen(s);

        if (n < 1 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) ||
                      strchr(extra, ch)))
                        return false;
        }
        return true;
}

const char *conf_format_duration(uint64_t ms, char *buf, size_t size) {
        static const struct { char unit; uint64_t ms; } units[] = {
                { 'd', 86400000 }, { 'h', 3600000 }, { 'm', 60000 }, { 's', 1000 },
        };

        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
                if (ms > 0 && ms % units[i].ms == 0) {
                        snprintf(buf, size, "%" PRIu64 "%c", ms / units[i].ms, units[i].unit);
                        return buf;
                }
        snprintf(buf, size, "%" PRIu64 "ms", ms);
        return buf;
}

int conf_parse_listen(const char *s, char *addr, size_t size, uint16_t *ret_port) {
        char host[INET6_ADDRSTRLEN + 1];
        unsigned char bin[sizeof(struct in6_addr)];
        const char *colon, *start = s, *end;
        uint16_t port;
        bool v6 = s[0] == '[';

        if (v6) {
                start = s + 1;
                end = strchr(start, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                colon = end + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                end = colon;
        }
        if ((size_t)(end - start) >= sizeof(host) || end == start)
                return -EINVAL;
        memcpy(host, start, (size_t)(end - start));
        host[end - start] = 0;
        if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1 || conf_parse_port(colon + 1, &port) < 0)
                return -EINVAL;
        if (addr) {
                if (strlen(host) >= size)
                        return -ERANGE;
                strcpy(addr, host);
        }
        if (ret_port)
                *ret_port = port;
        return 0;
}
