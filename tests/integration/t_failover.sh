#!/usr/bin/env bash
# End to end, as `make demo` tells it: HAProxy with cookie stickiness in front
# of three nodes, each nginx -> php-fpm (pool as www-data; IT_WEB=phps: php
# -S); a user logs in on n1, n1 dies (SIGKILL to all of its processes), the
# user's next request lands on n2 still logged in with the counter intact,
# and the time from the kill to that answer is printed ("# measured:");
# logout on n2; n1 comes back and the user is logged out there too.
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
