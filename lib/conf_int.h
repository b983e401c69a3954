/* Inside the config module: the [node] key table that lib/conf.c parses
 * with and lib/conf_reload.c compares with. Included only by those two. */
#ifndef SESSYNC_LIB_CONF_INT_H
#define SESSYNC_LIB_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>

enum vtype { V_NODE_NAME, V_SAVE_PATH, V_PATH, V_SOCKET, V_PREFIX, V_HOST, V_USER, V_SIZE, V_DURATION,
             V_LEVEL, V_PORT, V_LISTEN, V_FORMAT };

struct key {
        const char *name;
        enum vtype type;
        size_t off;                     /* of the field in struct conf or struct conf_peer */
};

/* The [node] keys in file order, *ret_n of them, and for each whether a
 * running daemon takes it on SIGHUP (docs/DESIGN.md "Reload"). Static
 * tables: they live as long as the program. */
const struct key *conf_node_key_table(size_t *ret_n, const bool **ret_live);

#endif
