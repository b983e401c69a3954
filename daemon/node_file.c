/* Opening a session file as PHP's own (docs/DESIGN.md "Only PHP's own
 * files"): a file another uid owns, or with a second hard link, is neither
 * sent nor written into. The refusal is kept on the entry, so it is logged
 * once per name and reason and counted. Calls only node_queue.c (a file
 * that is PHP's own again goes to every peer). */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include "daemon/log.h"

static void set_skip(struct node *n, struct node_ent *e, uint8_t skip, const struct sess_file *f, bool gone) {
        if (e->skip == skip)
                return;   /* logged once per name and reason */
        if (!e->skip)
                n->n_skipped++;
        else if (!skip)
                n->n_skipped--;
        e->skip = skip;
        if (!skip && gone)
                return;   /* the file went away: nothing to say, the check handles the rest */
        if (skip == NODE_SKIP_OWNER)
                log_warn("session %s: owned by uid %u, not PHP's user (uid %u): not replicated, never written",
                         e->tag, (unsigned)f->uid, (unsigned)n->php_uid);
        else if (skip == NODE_SKIP_LINKS)
                log_warn("session %s: has %lu hard links: not replicated, never written", e->tag,
                         (unsigned long)f->nlink);
        else
                log_info("session %s: PHP's own file again: replicated", e->tag);
        if (skip)
                n->skipped_total++;
        else if (e->kind == VER_KIND_FILE)
                node_mark_all(n, e);   /* the sender dropped it while it was not PHP's own */
}

int node_open(struct node *n, struct node_ent *e, int flags, size_t max, struct sess_file *f) {
        int r = sess_open_owned(n->dirfd, e->name, flags, max, n->php_uid, f);

        if (r == -EPERM)
                set_skip(n, e, NODE_SKIP_OWNER, f, false);
        else if (r == -EMLINK)
                set_skip(n, e, NODE_SKIP_LINKS, f, false);
        else if (r == 0 || r == -ENOENT)
                set_skip(n, e, NODE_SKIP_NONE, f, r == -ENOENT);
        return r;
}
