#include "lib/ver.h"

int ver_cmp(const struct proto_ver *a, const struct proto_ver *b) {
        if (a->mtime_ns != b->mtime_ns)
                return a->mtime_ns < b->mtime_ns ? -1 : 1;
        if (a->hash != b->hash)
                return a->hash < b->hash ? -1 : 1;
        return 0;
}

bool ver_tomb_beats(uint8_t kind, const struct proto_ver *t, const struct proto_ver *v) {
        if (kind == VER_KIND_DESTROY)
                return v->mtime_ns < t->mtime_ns;
        if (kind == VER_KIND_EXPIRE)
                return ver_cmp(v, t) <= 0;
        return false;
}

bool ver_state_beats(uint8_t kind_a, const struct proto_ver *a, uint8_t kind_b, const struct proto_ver *b) {
        if (kind_a == VER_KIND_NONE)
                return false;
        if (kind_b == VER_KIND_NONE)
                return true;
        if (kind_a == VER_KIND_FILE && kind_b == VER_KIND_FILE)
                return ver_cmp(a, b) > 0;
        if (kind_a != VER_KIND_FILE && kind_b == VER_KIND_FILE)
                return ver_tomb_beats(kind_a, a, b);
        if (kind_a == VER_KIND_FILE)
                return !ver_tomb_beats(kind_b, b, a);
        return false;
}

bool ver_tomb_cover(uint8_t kind, const struct proto_ver *t, struct proto_ver *ret) {
        if (kind == VER_KIND_EXPIRE) {
                *ret = *t;
                return true;
        }
        if (kind != VER_KIND_DESTROY || t->mtime_ns == 0)
                return false;
        *ret = (struct proto_ver){ t->mtime_ns - 1, UINT64_MAX };
        return true;
}

bool ver_tomb_stronger(uint8_t kind_a, const struct proto_ver *a, uint8_t kind_b, const struct proto_ver *b) {
        struct proto_ver ca, cb;
        bool na, nb;
        int c;

        if (!ver_is_tomb(kind_b))
                return true;
        na = !ver_tomb_cover(kind_a, a, &ca);
        nb = !ver_tomb_cover(kind_b, b, &cb);
        if (na != nb)
                return nb;
        c = na ? 0 : ver_cmp(&ca, &cb);
        if (c != 0)
                return c > 0;
        if (kind_a != kind_b)
                return kind_a == VER_KIND_DESTROY;   /* same cover: keep the logout's kind */
        return a->hash > b->hash;
}

bool ver_forgettable(const struct proto_ver *v, uint64_t now_ns, uint64_t ttl_ns) {
        return now_ns > ttl_ns && v->mtime_ns < now_ns - ttl_ns;
}

bool ver_too_new(const struct proto_ver *v, uint64_t now_ns, uint64_t ahead_ns) {
        return v->mtime_ns > now_ns && v->mtime_ns - now_ns > ahead_ns;   /* no now + ahead: it could wrap */
}

void ver_delete(const struct proto_ver *file, uint64_t now_ns, uint64_t lifetime_ns, uint8_t *ret_kind,
                struct proto_ver *ret_v) {
        if (now_ns >= file->mtime_ns && now_ns - file->mtime_ns >= lifetime_ns) {
                *ret_kind = VER_KIND_EXPIRE;
                *ret_v = *file;
        } else if (file->mtime_ns == UINT64_MAX) {
                /* No destroy is later than the last ns: an expiry of the
                 * highest version beats everything, as that destroy would. */
                *ret_kind = VER_KIND_EXPIRE;
                *ret_v = (struct proto_ver){ UINT64_MAX, UINT64_MAX };
        } else {
                /* Never before the version it deleted: that version may carry
                 * a clock ahead of ours (docs/DESIGN.md "Destroy and expiry"). */
                *ret_kind = VER_KIND_DESTROY;
                *ret_v = (struct proto_ver){ .mtime_ns = now_ns > file->mtime_ns ? now_ns : file->mtime_ns + 1,
                                             .hash = 0 };
        }
}
