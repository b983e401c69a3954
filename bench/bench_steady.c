/* Steady replication at a fixed offered rate, to every replica at once:
 * PHP-style sessions of about 4.8 KB (PHP's serialize format, one session per
 * 26-character id) are rewritten the way PHP's files handler writes (open
 * O_CREAT|O_RDWR, flock LOCK_EX, ftruncate, pwrite, close) in SRC at RATE
 * writes/s for SECONDS; each write changes only the first fields (seq,
 * last_seen, one cart quantity), the rest of the session stays as it was: a
 * small change to a ~4.8 KB file. For every replica directory, inotify tells
 * when a file changed; it is read, and a write counts as arrived there once
 * that replica holds, whole, that write or a later one of the same session
 * (a replicator may skip a version that was already rewritten: the user sees
 * the newer one, so the older write's latency ends there too).
 *
 * usage: bench_steady seed SRC SESSIONS
 *          writes every session once (seq 0, not measured);
 *        bench_steady run SRC SESSIONS RATE SECONDS SEQ_BASE DST...
 *          SEQ_BASE > every seq written before (stale files must not match).
 * prints one line of key=value: writes, achieved rate, per (write, replica):
 * arrived (of which coalesced: reached only through a later write), lost
 * (not there 10 s after the last write), latency p50/p90/p99/max in ms over
 * every (write, replica). Sessions are written round robin, so write k is
 * session k % SESSIONS. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define MAX_DST 8
#define BODY_MAX 8192

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static uint64_t rnd(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* PHP's session ids: 26 characters of [0-9a-v] (sid_bits_per_character 5). */
static void sess_name(unsigned s, char out[32]) {
        static const char alpha[] = "0123456789abcdefghijklmnopqrstuv";
        uint64_t st = 0x9e3779b97f4a7c15ull ^ ((uint64_t)s * 0xff51afd7ed558ccdull);

        memcpy(out, "sess_", 5);
        for (int i = 0; i < 26; i++)
                out[5 + i] = alpha[rnd(&st) & 31];
        out[31] = 0;
}

/* The part of session s that no write changes: a logged-in shop user. */
static size_t sess_static(unsigned s, char *b, size_t cap) {
        static const char *words[] = { "alpha", "bravo", "delta", "echo", "kilo", "lima", "oscar", "tango" };
        uint64_t st = 0x2545f4914f6cdd1dull + s;
        size_t n = 0;
        char hex[65];

        for (int i = 0; i < 64; i++)
                hex[i] = "0123456789abcdef"[rnd(&st) & 15];
        hex[64] = 0;
        n += (size_t)snprintf(b + n, cap - n,
                              "user_id|i:%u;username|s:10:\"user%06u\";email|s:22:\"user%06u@example.com\";"
                              "roles|a:2:{i:0;s:4:\"user\";i:1;s:6:\"editor\";}csrf_token|s:64:\"%s\";"
                              "locale|s:5:\"en_GB\";login_time|i:%u;",
                              s, s, s, hex, 1700000000u + s);
        n += (size_t)snprintf(b + n, cap - n, "recent|a:24:{");
        for (int i = 0; i < 24; i++)
                n += (size_t)snprintf(b + n, cap - n, "i:%d;i:%u;", i, (unsigned)(rnd(&st) % 900000 + 100000));
        n += (size_t)snprintf(b + n, cap - n, "}prefs|a:6:{s:5:\"theme\";s:4:\"dark\";s:8:\"currency\";s:3:\"EUR\";"
                                              "s:8:\"per_page\";i:48;s:4:\"sort\";s:10:\"price_desc\";"
                                              "s:10:\"newsletter\";b:1;s:3:\"tag\";s:5:\"%s\";}",
                              words[rnd(&st) & 7]);
        n += (size_t)snprintf(b + n, cap - n, "history|a:36:{");
        for (int i = 0; i < 36 && n + 200 < cap; i++) {
                unsigned id = (unsigned)(rnd(&st) % 90000 + 10000);

                n += (size_t)snprintf(b + n, cap - n,
                                      "i:%d;a:3:{s:3:\"url\";s:26:\"/catalog/%s/item-%05u.html\";s:2:\"at\";i:%u;s:3:\"ref\";s:8:\"%.8s\";}",
                                      i, words[id & 7][0] == 'e' ? "echo_" : "shop_", id, 1700000000u + id,
                                      hex + (id % 56));
        }
        n += (size_t)snprintf(b + n, cap - n, "}");
        while (n < 4760 && n + 64 < cap)
                n += (size_t)snprintf(b + n, cap - n, "flash_%zu|s:24:\"%.24s\";", n, hex + (n % 40));
        return n;
}

/* The changing head: seq first, so a replica's seq is read from its first bytes. */
static size_t sess_head(unsigned s, uint64_t seq, char *b, size_t cap) {
        return (size_t)snprintf(b, cap, "seq|i:%" PRIu64 ";last_seen|i:%" PRIu64 ";cart|a:1:{i:0;a:2:{s:3:\"sku\";s:8:\"SKU%05u\";s:3:\"qty\";i:%u;}}",
                                seq, (uint64_t)1800000000u + seq / 1000, s % 99991, (unsigned)(seq % 9) + 1);
}

static char **names;
static char **statics;
static size_t *static_len;

static void sessions_init(unsigned nsess) {
        char buf[BODY_MAX];

        names = calloc(nsess, sizeof(*names));
        statics = calloc(nsess, sizeof(*statics));
        static_len = calloc(nsess, sizeof(*static_len));
        if (!names || !statics || !static_len)
                exit(1);
        for (unsigned s = 0; s < nsess; s++) {
                names[s] = malloc(32);
                sess_name(s, names[s]);
                static_len[s] = sess_static(s, buf, sizeof(buf) - 256);
                statics[s] = malloc(static_len[s]);
                if (!statics[s])
                        exit(1);
                memcpy(statics[s], buf, static_len[s]);
        }
}

static size_t expect_len(unsigned s, uint64_t seq) {
        char h[256];

        return sess_head(s, seq, h, sizeof(h)) + static_len[s];
}

static void php_write(const char *dir, unsigned s, uint64_t seq) {
        char path[4096], buf[BODY_MAX];
        size_t n = sess_head(s, seq, buf, 256);
        int fd;

        memcpy(buf + n, statics[s], static_len[s]);
        n += static_len[s];
        snprintf(path, sizeof(path), "%s/%s", dir, names[s]);
        fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, buf, n, 0) != (ssize_t)n) {
                perror(path);
                exit(1);
        }
        close(fd);
}

/* The seq a replica's file holds whole, or -1. */
static int64_t read_seq(const char *dir, const char *name, unsigned s) {
        char path[4096], buf[BODY_MAX];
        uint64_t seq;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = 0;
        if (sscanf(buf, "seq|i:%" SCNu64 ";", &seq) != 1 || (size_t)n != expect_len(s, seq))
                return -1;
        return (int64_t)seq;
}

/* Session index from a file name, via a small open-addressing table. */
static unsigned *slot;
static size_t nslot;

static uint64_t name_hash(const char *n) {
        uint64_t h = 1469598103934665603ull;

        for (; *n; n++)
                h = (h ^ (unsigned char)*n) * 1099511628211ull;
        return h;
}

static void index_init(unsigned nsess) {
        nslot = 4;
        while (nslot < nsess * 2u)
                nslot <<= 1;
        slot = malloc(nslot * sizeof(*slot));
        if (!slot)
                exit(1);
        for (size_t i = 0; i < nslot; i++)
                slot[i] = UINT32_MAX;
        for (unsigned s = 0; s < nsess; s++) {
                size_t i = name_hash(names[s]) & (nslot - 1);

                while (slot[i] != UINT32_MAX)
                        i = (i + 1) & (nslot - 1);
                slot[i] = s;
        }
}

static int name_index(const char *n) {
        for (size_t i = name_hash(n) & (nslot - 1); slot[i] != UINT32_MAX; i = (i + 1) & (nslot - 1))
                if (!strcmp(names[slot[i]], n))
                        return (int)slot[i];
        return -1;
}

int main(int argc, char **argv) {
        const char *src, *dst[MAX_DST];
        unsigned rate, secs, nsess, ndst;
        uint64_t base, start, *sent, *lat[MAX_DST], last_write = 0;
        size_t total, arrived = 0, coalesced = 0, lost = 0;
        int64_t *latest;   /* per session: the newest k written */
        int64_t *seen[MAX_DST];   /* per replica and session: the newest k it showed */
        int ifd[MAX_DST];
        char buf[64 * 1024];
        uint32_t *mark, epoch = 0;
        unsigned *todo;
        size_t overflows = 0;

        if (argc == 4 && !strcmp(argv[1], "seed")) {
                nsess = (unsigned)atoi(argv[3]);
                sessions_init(nsess);
                for (unsigned s = 0; s < nsess; s++)
                        php_write(argv[2], s, 0);
                return 0;
        }
        if (argc < 8 || strcmp(argv[1], "run") || argc - 7 > MAX_DST) {
                fprintf(stderr, "usage: %s seed SRC SESSIONS | run SRC SESSIONS RATE SECONDS SEQ_BASE DST...\n",
                        argv[0]);
                return 2;
        }
        src = argv[2];
        nsess = (unsigned)atoi(argv[3]);
        rate = (unsigned)atoi(argv[4]);
        secs = (unsigned)atoi(argv[5]);
        base = strtoull(argv[6], NULL, 10);
        ndst = (unsigned)(argc - 7);
        total = (size_t)rate * secs;
        if (!rate || !nsess || !total)
                return 2;
        sessions_init(nsess);
        index_init(nsess);
        sent = calloc(total, sizeof(*sent));
        latest = malloc(nsess * sizeof(*latest));
        mark = calloc(nsess, sizeof(*mark));
        todo = malloc(nsess * sizeof(*todo));
        if (!sent || !latest || !mark || !todo)
                return 1;
        for (unsigned s = 0; s < nsess; s++)
                latest[s] = -1;
        for (unsigned d = 0; d < ndst; d++) {
                dst[d] = argv[7 + d];
                lat[d] = calloc(total, sizeof(*lat[d]));
                seen[d] = malloc(nsess * sizeof(*seen[d]));
                if (!lat[d] || !seen[d])
                        return 1;
                for (unsigned s = 0; s < nsess; s++)
                        seen[d][s] = -1;
                ifd[d] = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
                if (ifd[d] < 0 ||
                    inotify_add_watch(ifd[d], dst[d], IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO) < 0) {
                        perror(dst[d]);
                        return 1;
                }
        }
        start = now_us();
        for (size_t k = 0;;) {
                uint64_t now = now_us();
                struct pollfd pfd[MAX_DST];
                int timeout;

                while (k < total && now >= start + k * 1000000u / rate) {
                        unsigned s = (unsigned)(k % nsess);

                        sent[k] = now_us();
                        php_write(src, s, base + k);
                        latest[s] = (int64_t)k;
                        k++;
                        now = last_write = now_us();
                }
                if (k == total) {
                        /* done once every replica shows every session's last write */
                        int done = 1;

                        for (unsigned d = 0; d < ndst && done; d++)
                                for (unsigned s = 0; s < nsess && done; s++)
                                        if (latest[s] >= 0 && seen[d][s] < latest[s])
                                                done = 0;
                        if (done || now > last_write + 10000000u)
                                break;
                }
                timeout = k < total ? (int)((start + k * 1000000u / rate - now) / 1000u) : 50;
                for (unsigned d = 0; d < ndst; d++)
                        pfd[d] = (struct pollfd){ .fd = ifd[d], .events = POLLIN };
                if (poll(pfd, ndst, timeout < 0 ? 0 : timeout) <= 0)
                        continue;
                for (unsigned d = 0; d < ndst; d++) {
                        size_t nt = 0;
                        int overflow = 0;

                        if (!(pfd[d].revents & POLLIN))
                                continue;
                        /* Every event queued now, each session once: a replica's
                         * apply raises several events (truncate, write, close). */
                        epoch++;
                        for (;;) {
                                ssize_t n = read(ifd[d], buf, sizeof(buf));

                                if (n <= 0)
                                        break;
                                for (char *p = buf; p < buf + n;) {
                                        struct inotify_event *ev = (struct inotify_event *)p;
                                        int s;

                                        p += sizeof(*ev) + ev->len;
                                        if (ev->mask & IN_Q_OVERFLOW)
                                                overflow = 1;
                                        if (!ev->len || (s = name_index(ev->name)) < 0 || mark[s] == epoch)
                                                continue;
                                        mark[s] = epoch;
                                        todo[nt++] = (unsigned)s;
                                }
                        }
                        if (overflow)   /* events were dropped: look at every session */
                                for (unsigned s = nt = 0; s < nsess; s++)
                                        todo[nt++] = s;
                        for (size_t t = 0; t < nt; t++) {
                                unsigned s = todo[t];
                                int64_t seq = read_seq(dst[d], names[s], s);
                                uint64_t kk;

                                if (seq < 0 || (uint64_t)seq < base || (uint64_t)seq - base >= total)
                                        continue;
                                kk = (uint64_t)seq - base;
                                if ((int64_t)kk <= seen[d][s] || !sent[kk])
                                        continue;
                                for (uint64_t j = seen[d][s] < 0 ? (uint64_t)s : (uint64_t)seen[d][s] + nsess; j <= kk;
                                     j += nsess) {
                                        lat[d][j] = now_us() - sent[j] + 1;
                                        coalesced += j != kk;
                                }
                                seen[d][s] = (int64_t)kk;
                        }
                        overflows += overflow;
                }
        }
        {
                uint64_t *v = malloc(total * ndst * sizeof(*v));
                size_t m = 0;

                if (!v)
                        return 1;
                for (unsigned d = 0; d < ndst; d++)
                        for (size_t k = 0; k < total; k++) {
                                if (lat[d][k]) {
                                        arrived++;
                                        v[m++] = lat[d][k];
                                } else {
                                        lost++;
                                }
                        }
                qsort(v, m, sizeof(*v), cmp_u64);
                printf("writes=%zu rate=%u achieved=%.0f sessions=%u replicas=%u arrived=%zu coalesced=%zu lost=%zu",
                       total, rate, (double)total * 1e6 / (double)(sent[total - 1] - start + 1), nsess, ndst, arrived,
                       coalesced, lost);
                if (m)
                        printf(" p50=%.2f p90=%.2f p99=%.2f max=%.2f", v[m / 2] / 1000.0, v[m * 9 / 10] / 1000.0,
                               v[m * 99 / 100] / 1000.0, v[m - 1] / 1000.0);
                else
                        printf(" p50=- p90=- p99=- max=-");
                printf(" size=%zu overflows=%zu\n", expect_len(0, base), overflows);
                free(v);
        }
        return 0;
}
