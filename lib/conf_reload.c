/* SIGHUP's half of the config (docs/DESIGN.md "Reload"): what changed
 * between the running config and the file read again, and which of it may
 * change while the daemon runs. Non-logging, like lib/conf.c. */
#include "lib/conf.h"
#include "lib/conf_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool str_same(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* Does field k hold the same value in a and b? Every type is listed (no
 * default): a new one must say how it compares. */
static bool key_same(const struct key *k, const struct conf *a, const struct conf *b) {
        const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;

        switch (k->type) {
        case V_NODE_NAME:
                return strcmp(fa, fb) == 0;
        case V_SIZE:
        case V_DURATION:
                return *(const uint64_t *)fa == *(const uint64_t *)fb;
        case V_LEVEL:
                return *(const int *)fa == *(const int *)fb;
        case V_FORMAT:
                return *(const uint8_t *)fa == *(const uint8_t *)fb;
        case V_PORT:
                return *(const uint16_t *)fa == *(const uint16_t *)fb;
        case V_SAVE_PATH:
                if (a->session_depth != b->session_depth)
                        return false;
                /* fall through */
        case V_PATH:
        case V_SOCKET:
        case V_PREFIX:
        case V_HOST:
        case V_USER:
        case V_LISTEN:
                return str_same(*(char *const *)fa, *(char *const *)fb);
        }
        return false;
}

/* Give b a's value of field k. */
static int key_copy(const struct key *k, const struct conf *a, struct conf *b) {
        const char *fa = (const char *)a + k->off;
        char *fb = (char *)b + k->off, *s = NULL;

        switch (k->type) {
        case V_NODE_NAME:
                strcpy(fb, fa);
                return 0;
        case V_SIZE:
        case V_DURATION:
                *(uint64_t *)fb = *(const uint64_t *)fa;
                return 0;
        case V_LEVEL:
                *(int *)fb = *(const int *)fa;
                return 0;
        case V_FORMAT:
                *(uint8_t *)fb = *(const uint8_t *)fa;
                return 0;
        case V_PORT:
                *(uint16_t *)fb = *(const uint16_t *)fa;
                return 0;
        case V_SAVE_PATH:
                b->session_depth = a->session_depth;
                /* fall through */
        case V_PATH:
        case V_SOCKET:
        case V_PREFIX:
        case V_HOST:
        case V_USER:
        case V_LISTEN:
                if (*(char *const *)fa && !(s = strdup(*(char *const *)fa)))
                        return -ENOMEM;
                free(*(char **)fb);
                *(char **)fb = s;
                return 0;
        }
        return 0;
}

int conf_reload_keep(const struct conf *old, struct conf *new, void (*fn)(void *ctx, const char *key, bool live),
                     void *ctx) {
        int r;

        const bool *live;
        size_t n;
        const struct key *keys = conf_node_key_table(&n, &live);

        for (size_t k = 0; k < n; k++) {
                if (key_same(&keys[k], old, new))
                        continue;
                fn(ctx, keys[k].name, live[k]);
                if (!live[k] && (r = key_copy(&keys[k], old, new)) < 0)
                        return r;
        }
        return 0;
}

bool conf_peer_same(const struct conf_peer *a, const struct conf_peer *b) {
        return strcmp(a->name, b->name) == 0 && a->port == b->port && str_same(a->host, b->host) &&
               str_same(a->user, b->user);
}
