/* libFuzzer target for lib/ver: every "who wins" rule, as properties over
 * states and times decoded from the input (the same laws as the prop_*
 * tests in tests/test_ver.c, over inputs the fuzzer steers to the edges).
 *
 * Input: a sequence of fields; a byte past the end reads as 0. A kind is one
 * byte (low 2 bits: FILE, DESTROY, EXPIRE, NONE). A u64 is a control byte c
 * then: c & 0x80: 8 raw bytes, big-endian; else a base (c >> 4 & 7: 0, 1,
 * 1.7e18, MAX, or one of the last four u64 decoded) plus (c & 15) - 8, so
 * equal mtimes and equal versions come up often. Fields in order: three
 * states (kind, mtime, hash), a fourth version, then now, lifetime, ttl,
 * ahead.
 *
 * Invariants checked (__builtin_trap() on a break, so libFuzzer keeps the
 * input):
 *  - ver_cmp: reflexive, antisymmetric, 0 only for equal versions,
 *    (mtime, hash) lexicographic, transitive.
 *  - ver_state_beats: never both ways; NONE never beats, all else beats
 *    NONE; tombstones never beat each other; for files it is ver_cmp; a file
 *    against a tombstone is never a tie; transitive unless both ends are
 *    tombstones (those never beat each other, by design).
 *  - ver_tomb_beats: a destroy beats exactly mtime < its time, an expiry
 *    exactly the versions <= the one it deleted; closed downwards.
 *  - ver_tomb_stronger: a total order on tombstones, above every
 *    non-tombstone, transitive; the kept one beats every version the other
 *    beat.
 *  - ver_forgettable, ver_too_new: agree with the definition in exact
 *    arithmetic (now - mtime > ttl; mtime - now > ahead).
 *  - ver_delete: expiry iff at least lifetime old, carrying the version;
 *    else a destroy (max(now, mtime + 1), 0); the tombstone beats the
 *    version it deleted, whatever the clocks; an expiry spares newer
 *    versions; a destroy beats exactly those older than its time.
 *
 * The rules once had exceptions (a destroy losing to the version it
 * deleted when mtime >= now, lifetime 0, a destroy and an expiry at the
 * same time); they are fixed and checked here like the rest (KNOWN() is
 * false; -DFUZZ_VER_STRICT is accepted and changes nothing).
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -fno-sanitize-recover=all -Wall -Wextra -Werror -I. -D_GNU_SOURCE
 *   tests/fuzz/fuzz_ver.c lib/ver.c proto/buf.c proto/msg.c */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/ver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                            \
        do {                                                                                \
                if (!(c)) {                                                                 \
                        fprintf(stderr, "fuzz_ver: %s:%d: %s\n", __FILE__, __LINE__, #c); \
                        __builtin_trap();                                                   \
                }                                                                           \
        } while (0)

#define KNOWN(c) false

struct st {
        uint8_t kind;
        struct proto_ver v;
};

struct in {
        const uint8_t *p;
        size_t n;
        uint64_t last[4];
        unsigned n_last;
};

static uint8_t in_u8(struct in *in) {
        uint8_t b = 0;

        if (in->n) {
                b = *in->p++;
                in->n--;
        }
        return b;
}

static uint64_t in_u64(struct in *in) {
        uint8_t c = in_u8(in);
        uint64_t v = 0;

        if (c & 0x80) {
                for (int i = 0; i < 8; i++)
                        v = v << 8 | in_u8(in);
        } else {
                static const uint64_t bases[4] = { 0, 1, UINT64_C(1700000000123456789), UINT64_MAX };
                unsigned b = c >> 4 & 7;

                v = b < 4 ? bases[b] : in->last[(in->n_last - 1 - (b - 4)) & 3];
                v += (uint64_t)(c & 15) - 8;   /* wraps on purpose: 0 - 1 is MAX */
        }
        in->last[in->n_last++ & 3] = v;
        return v;
}

static struct st in_state(struct in *in) {
        static const uint8_t kinds[4] = { VER_KIND_FILE, VER_KIND_DESTROY, VER_KIND_EXPIRE, VER_KIND_NONE };
        struct st s;

        s.kind = kinds[in_u8(in) & 3];
        s.v.mtime_ns = in_u64(in);
        s.v.hash = in_u64(in);
        return s;
}

static int sign(int x) {
        return (x > 0) - (x < 0);
}

static bool veq(const struct proto_ver *a, const struct proto_ver *b) {
        return a->mtime_ns == b->mtime_ns && a->hash == b->hash;
}

static bool beats(const struct st *a, const struct st *b) {
        return ver_state_beats(a->kind, &a->v, b->kind, &b->v);
}

static bool stronger(const struct st *a, const struct st *b) {
        return ver_tomb_stronger(a->kind, &a->v, b->kind, &b->v);
}

static void check_cmp(const struct proto_ver *a, const struct proto_ver *b, const struct proto_ver *c) {
        int ab = ver_cmp(a, b), ba = ver_cmp(b, a), bc = ver_cmp(b, c), ac = ver_cmp(a, c);
        int lex = a->mtime_ns != b->mtime_ns ? (a->mtime_ns < b->mtime_ns ? -1 : 1)
                                             : (a->hash != b->hash ? (a->hash < b->hash ? -1 : 1) : 0);

        CHECK(ver_cmp(a, a) == 0);
        CHECK(sign(ab) == -sign(ba));
        CHECK((ab == 0) == veq(a, b));
        CHECK(sign(ab) == lex);
        if (ab < 0 && bc < 0)
                CHECK(ac < 0);
        if (ab == 0 && bc == 0)
                CHECK(ac == 0);
}

static void check_beats_pair(const struct st *a, const struct st *b) {
        bool ab = beats(a, b), ba = beats(b, a);

        CHECK(!(ab && ba));
        if (a->kind == VER_KIND_NONE)
                CHECK(!ab);
        if (a->kind != VER_KIND_NONE && b->kind == VER_KIND_NONE)
                CHECK(ab);
        if (ver_is_tomb(a->kind) && ver_is_tomb(b->kind))
                CHECK(!ab);
        if (a->kind == VER_KIND_FILE && b->kind == VER_KIND_FILE)
                CHECK(ab == (ver_cmp(&a->v, &b->v) > 0));
        if (a->kind == VER_KIND_FILE && ver_is_tomb(b->kind))
                CHECK(ab != ba);
        if (ver_is_tomb(a->kind) && b->kind == VER_KIND_FILE)
                CHECK(ab == ver_tomb_beats(a->kind, &a->v, &b->v));
        if (a->kind == b->kind && veq(&a->v, &b->v))
                CHECK(!ab);
}

static void check_beats_triple(const struct st *a, const struct st *b, const struct st *c) {
        if (ver_is_tomb(a->kind) && ver_is_tomb(c->kind))
                return;         /* DESTROY(2) > FILE(1) > DESTROY(1): by design */
        if (beats(a, b) && beats(b, c))
                CHECK(beats(a, c));
}

static void check_tomb_beats(const struct proto_ver *t, const struct proto_ver *v, const struct proto_ver *w) {
        bool d = ver_tomb_beats(VER_KIND_DESTROY, t, v), e = ver_tomb_beats(VER_KIND_EXPIRE, t, v);

        CHECK(d == (v->mtime_ns < t->mtime_ns));
        CHECK(e == (ver_cmp(v, t) <= 0));
        CHECK(!ver_tomb_beats(VER_KIND_FILE, t, v));
        CHECK(!ver_tomb_beats(VER_KIND_NONE, t, v));
        if (ver_cmp(w, v) <= 0) {       /* closed downwards */
                if (d)
                        CHECK(ver_tomb_beats(VER_KIND_DESTROY, t, w));
                if (e)
                        CHECK(ver_tomb_beats(VER_KIND_EXPIRE, t, w));
        }
}

static void check_stronger(const struct st *a, const struct st *b, const struct st *c, const struct proto_ver *v) {
        bool ab, ba;

        if (!ver_is_tomb(a->kind))
                return;
        if (!ver_is_tomb(b->kind)) {
                CHECK(stronger(a, b));
                return;
        }
        ab = stronger(a, b);
        ba = stronger(b, a);
        if (a->kind == b->kind && veq(&a->v, &b->v))
                CHECK(!ab && !ba);
        else
                CHECK(ab != ba);
        if (a->v.mtime_ns > b->v.mtime_ns)
                CHECK(ab);
        if (ab && stronger(b, c))
                CHECK(stronger(a, c));
        /* the kept one beats whatever the other beat */
        if (ab && ver_tomb_beats(b->kind, &b->v, v) &&
            !KNOWN(a->kind == VER_KIND_DESTROY && b->kind == VER_KIND_EXPIRE && a->v.mtime_ns == b->v.mtime_ns))
                CHECK(ver_tomb_beats(a->kind, &a->v, v));
}

static void check_times(const struct proto_ver *v, uint64_t now, uint64_t ttl, uint64_t ahead) {
        bool f = ver_forgettable(v, now, ttl), n = ver_too_new(v, now, ahead);

        CHECK(f == (v->mtime_ns < now && now - v->mtime_ns > ttl));
        CHECK(n == (v->mtime_ns > now && v->mtime_ns - now > ahead));
        if (v->mtime_ns <= now)
                CHECK(!n);
        if (v->mtime_ns >= now)
                CHECK(!f);
}

static void check_delete(const struct proto_ver *f, uint64_t now, uint64_t lifetime, const struct proto_ver *g) {
        struct st t = { 0x5a, { 0x5a5a5a5a5a5a5a5a, 0x5a5a5a5a5a5a5a5a } };
        struct st file = { VER_KIND_FILE, *f }, other = { VER_KIND_FILE, *g };
        bool expire = now >= f->mtime_ns && now - f->mtime_ns >= lifetime;

        if (KNOWN(lifetime == 0 && now == f->mtime_ns))
                expire = false;
        ver_delete(f, now, lifetime, &t.kind, &t.v);
        if (!expire && f->mtime_ns == UINT64_MAX) {     /* no destroy after the last ns: an expiry of everything */
                CHECK(t.kind == VER_KIND_EXPIRE && t.v.mtime_ns == UINT64_MAX && t.v.hash == UINT64_MAX);
                return;
        }
        CHECK(t.kind == (expire ? VER_KIND_EXPIRE : VER_KIND_DESTROY));
        if (t.kind == VER_KIND_EXPIRE) {
                CHECK(veq(&t.v, f));
                CHECK(ver_tomb_beats(t.kind, &t.v, f));
                CHECK(beats(&t, &file) && !beats(&file, &t));
                if (ver_cmp(g, f) > 0)  /* active elsewhere: not logged out */
                        CHECK(!ver_tomb_beats(t.kind, &t.v, g) && beats(&other, &t));
                else
                        CHECK(ver_tomb_beats(t.kind, &t.v, g));
                return;
        }
        CHECK(t.kind == VER_KIND_DESTROY);
        CHECK(t.v.mtime_ns == (now > f->mtime_ns ? now : f->mtime_ns + 1) && t.v.hash == 0);
        /* a destroy beats every version older than its time, nothing else */
        CHECK(ver_tomb_beats(t.kind, &t.v, g) == (g->mtime_ns < t.v.mtime_ns));
        CHECK(beats(&t, &other) == (g->mtime_ns < t.v.mtime_ns));
        /* and the version it deleted, whatever the clocks */
        if (!KNOWN(f->mtime_ns >= now)) {
                CHECK(ver_tomb_beats(t.kind, &t.v, f));
                CHECK(beats(&t, &file) && !beats(&file, &t));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct in in = { data, size, { 0 }, 0 };
        struct st s[3];
        struct proto_ver g;
        uint64_t now, lifetime, ttl, ahead;

        for (int i = 0; i < 3; i++)
                s[i] = in_state(&in);
        g.mtime_ns = in_u64(&in);
        g.hash = in_u64(&in);
        now = in_u64(&in);
        lifetime = in_u64(&in);
        ttl = in_u64(&in);
        ahead = in_u64(&in);

        for (int i = 0; i < 3; i++) {
                const struct st *a = &s[i], *b = &s[(i + 1) % 3], *c = &s[(i + 2) % 3];

                check_cmp(&a->v, &b->v, &c->v);
                check_cmp(&a->v, &c->v, &b->v);
                check_beats_pair(a, b);
                check_beats_pair(a, c);
                check_beats_triple(a, b, c);
                check_beats_triple(a, c, b);
                check_tomb_beats(&a->v, &b->v, &c->v);
                check_tomb_beats(&a->v, &g, &b->v);
                check_stronger(a, b, c, &g);
                check_stronger(a, c, b, &g);
                check_stronger(a, b, c, &b->v);
                check_times(&a->v, now, ttl, ahead);
                check_delete(&a->v, now, lifetime, &g);
                check_delete(&a->v, now, lifetime, &b->v);
        }
        check_times(&g, now, ttl, ahead);
        check_delete(&g, now, lifetime, &s[0].v);
        return 0;
}
