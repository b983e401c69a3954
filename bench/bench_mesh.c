/* Propagation time in an N-node mesh: write sessions the way PHP's files
 * handler does (open O_CREAT|O_RDWR, flock LOCK_EX, truncate, write, close)
 * at a fixed total rate, spread round-robin over N nodes' session
 * directories (write k goes to node k % N, a session of that node's own, so
 * no two nodes write one session), and time, from the moment each write was
 * scheduled, until every one of the other N-1 directories holds its bytes
 * (inotify on all N directories: the bench runs outside the nodes' network
 * namespaces, the directories are on the shared file system).
 *
 * usage: bench_mesh RATE_PER_S SECONDS SESSIONS_PER_NODE SIZE DIR1 DIR2 [DIR...]
 * prints one line of key=value pairs: writes, complete (all N-1 have it),
 * superseded (rewritten before all had it), incomplete (neither, 15 s after
 * the last write), all_p50/p99/max (ms, write to the last of N-1 copies),
 * overflows (the watcher's inotify queue overflowed: each one a rescan),
 * hop_p50/p99 (ms, write to one copy), rate (writes/s achieved: the writes
 * over the time from the first to the last). */
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

#define MAX_NODES 64
#define DRAIN_US 15000000u

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p) {
        size_t i;

        if (!n)
                return -1;
        i = (size_t)(p * (double)(n - 1) + 0.5);
        return (double)v[i] / 1000.0;
}

static void php_write(const char *dir, unsigned node, unsigned sess, uint64_t seq, size_t size) {
        char path[4096], *buf = malloc(size + 64);
        int fd, n;

        if (!buf)
                exit(1);
        snprintf(path, sizeof(path), "%s/sess_m%02ux%05u", dir, node, sess);
        n = snprintf(buf, size + 64, "seq|i:%" PRIu64 ";pad|s:%zu:\"", seq, size);
        memset(buf + n, 'x', size > (size_t)n + 2 ? size - (size_t)n - 2 : 0);
        if (size > (size_t)n + 2) {
                buf[size - 2] = '"';
                buf[size - 1] = ';';
                n = (int)size;
        }
        fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
                perror(path);
                exit(1);
        }
        close(fd);
        free(buf);
}

/* The seq in a replica, or -1 while it is not readable whole. */
static int64_t read_seq(const char *dir, const char *name) {
        char path[4096], buf[64];
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
        return sscanf(buf, "seq|i:%" SCNu64 ";", &seq) == 1 ? (int64_t)seq : -1;
}

struct run {
        char **dirs;
        unsigned nodes, nsess;
        size_t total, complete, nhop;
        uint64_t *sent, *lat, *hop, *got;   /* got: per write, which nodes hold it */
        int64_t *latest;                    /* per (node, session): the newest seq written */
        uint16_t *have;                     /* per write: how many others hold it */
};

/* Node j's copy of node o's session s holds what it holds now: count it if
 * that is the newest write of it and j did not have it yet. */
static void arrive(struct run *r, unsigned j, unsigned o, unsigned s, const char *name) {
        int64_t seq = read_seq(r->dirs[j], name);
        uint64_t now;

        if (seq < 0 || (size_t)seq >= r->total || r->latest[(size_t)o * r->nsess + s] != seq ||
            (r->got[seq] >> j & 1))
                return;
        now = now_us();
        r->got[seq] |= (uint64_t)1 << j;
        r->hop[r->nhop++] = now - r->sent[seq];
        if (++r->have[seq] == r->nodes - 1) {
                r->lat[seq] = now - r->sent[seq] + 1;
                r->complete++;
        }
}

/* After IN_Q_OVERFLOW (the watcher fell behind the kernel's queue of
 * 16,384 events): look at every copy still missing, as a rescan would. An
 * arrival found so counts from now: later than it was, never earlier. */
static void rescan(struct run *r) {
        char name[64];

        for (unsigned o = 0; o < r->nodes; o++)
                for (unsigned s = 0; s < r->nsess; s++) {
                        int64_t seq = r->latest[(size_t)o * r->nsess + s];

                        if (seq < 0 || r->lat[seq])
                                continue;
                        snprintf(name, sizeof(name), "sess_m%02ux%05u", o, s);
                        for (unsigned j = 0; j < r->nodes; j++)
                                if (j != o && !(r->got[seq] >> j & 1))
                                        arrive(r, j, o, s, name);
                }
}

int main(int argc, char **argv) {
        unsigned rate, secs, nsess, nodes;
        size_t size, total, superseded = 0, overflows = 0;
        uint64_t *sent, *lat, *hop, *got, start, last = 0;
        int64_t *latest;
        uint16_t *have;
        int wd[MAX_NODES], ifd;
        char buf[64 * 1024];
        struct run r;

        if (argc < 7 || argc - 5 > MAX_NODES) {
                fprintf(stderr, "usage: %s RATE_PER_S SECONDS SESSIONS_PER_NODE SIZE DIR1 DIR2 [DIR...] (at most %d)\n",
                        argv[0], MAX_NODES);
                return 2;
        }
        rate = (unsigned)atoi(argv[1]);
        secs = (unsigned)atoi(argv[2]);
        nsess = (unsigned)atoi(argv[3]);
        size = (size_t)atol(argv[4]);
        nodes = (unsigned)(argc - 5);
        total = (size_t)rate * secs;
        sent = calloc(total, sizeof(*sent));
        lat = calloc(total, sizeof(*lat));
        got = calloc(total, sizeof(*got));
        have = calloc(total, sizeof(*have));
        hop = calloc(total * (nodes - 1) + 1, sizeof(*hop));
        latest = malloc((size_t)nodes * nsess * sizeof(*latest));
        if (!sent || !lat || !got || !have || !hop || !latest || !rate || !nsess || !total)
                return 1;
        for (size_t i = 0; i < (size_t)nodes * nsess; i++)
                latest[i] = -1;
        r = (struct run){ .dirs = argv + 5, .nodes = nodes, .nsess = nsess, .total = total, .sent = sent,
                          .lat = lat, .hop = hop, .got = got, .latest = latest, .have = have };
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0)
                return perror("inotify"), 1;
        for (unsigned j = 0; j < nodes; j++) {
                wd[j] = inotify_add_watch(ifd, argv[5 + j], IN_CLOSE_WRITE);
                if (wd[j] < 0)
                        return perror(argv[5 + j]), 1;
        }
        start = now_us();
        for (size_t k = 0;;) {
                uint64_t now = now_us();
                struct pollfd pfd = { .fd = ifd, .events = POLLIN };
                struct timespec ts = { 0, 100000000 };

                while (k < total && now >= start + k * 1000000u / rate) {
                        unsigned o = (unsigned)(k % nodes), s = (unsigned)(k / nodes % nsess);
                        int64_t *l = &latest[(size_t)o * nsess + s];

                        if (*l >= 0 && !lat[*l])
                                superseded++;
                        /* From the scheduled time: a writer that fell behind
                         * must not hide the wait (coordinated omission). */
                        sent[k] = start + k * 1000000u / rate;
                        php_write(argv[5 + o], o, s, k, size);
                        *l = (int64_t)k;
                        k++;
                        now = last = now_us();
                }
                if (k == total && r.complete + superseded >= total)
                        break;
                if (k == total && now > start + (uint64_t)secs * 1000000u + DRAIN_US)
                        break;
                /* ppoll: microseconds, so a writer at 1,000/s does not spin
                 * on a 0 ms poll timeout between its writes. */
                if (k < total) {
                        uint64_t due = start + k * 1000000u / rate;
                        uint64_t wait = due > now ? due - now : 0;

                        ts.tv_sec = (time_t)(wait / 1000000u);
                        ts.tv_nsec = (long)(wait % 1000000u) * 1000;
                }
                if (ppoll(&pfd, 1, &ts, NULL) <= 0)
                        continue;
                for (;;) {
                        ssize_t n = read(ifd, buf, sizeof(buf));
                        char *p;

                        if (n <= 0)
                                break;
                        for (p = buf; p < buf + n;) {
                                struct inotify_event *ev = (struct inotify_event *)p;
                                unsigned j, o, s;

                                p += sizeof(*ev) + ev->len;
                                if (ev->mask & IN_Q_OVERFLOW) {
                                        overflows++;
                                        rescan(&r);
                                        continue;
                                }
                                for (j = 0; j < nodes && wd[j] != ev->wd; j++)
                                        ;
                                if (j == nodes || !ev->len || sscanf(ev->name, "sess_m%ux%u", &o, &s) != 2 ||
                                    o >= nodes || s >= nsess || o == j)
                                        continue;
                                arrive(&r, j, o, s, ev->name);
                        }
                }
        }
        {
                uint64_t *v = malloc((r.complete + 1) * sizeof(*v));
                size_t m = 0;

                if (!v)
                        return 1;
                for (size_t i = 0; i < total; i++)
                        if (lat[i])
                                v[m++] = lat[i] - 1;
                qsort(v, m, sizeof(*v), cmp_u64);
                qsort(hop, r.nhop, sizeof(*hop), cmp_u64);
                printf("nodes=%u writes=%zu complete=%zu superseded=%zu incomplete=%zu overflows=%zu "
                       "all_p50=%.2f all_p99=%.2f all_max=%.2f hop_p50=%.2f hop_p99=%.2f rate=%.0f\n",
                       nodes, total, r.complete, superseded, total - r.complete - superseded, overflows,
                       pct(v, m, 0.5), pct(v, m, 0.99), m ? (double)v[m - 1] / 1000.0 : -1.0,
                       pct(hop, r.nhop, 0.5), pct(hop, r.nhop, 0.99),
                       (double)total * 1e6 / (double)(last > start ? last - start : 1));
                free(v);
        }
        return 0;
}
