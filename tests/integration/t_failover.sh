#!/usr/bin/env bash
# End to end, as `make demo` tells it: HAProxy with cookie stickiness in front
# of three php -S nodes; a user logs in on n1, n1 is stopped, the user's next
# request lands on n2 still logged in with the counter intact; logout on n2;
# n1 comes back and the user is logged out there too.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/lib_web.sh"
. "$here/story.sh"
export IT_LOG_LEVEL=${IT_LOG_LEVEL:-info}
it_init t_failover
it_require_daemon
failover_story
it_finish
