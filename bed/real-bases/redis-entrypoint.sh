#!/bin/sh
# The official redis image's docker-entrypoint.sh: options or a .conf file as the first
# argument are the server's; the server runs as the redis user, owning its working dir
# (/data). Official builds compile protected mode off; Debian's server has it on, which
# refuses every client but loopback: without a config file it is turned off here.
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec gosu redis "$0" "$@"
fi
if [ "$1" = redis-server ] && [ "${2%.conf}" = "${2:-}" ]; then
	shift
	set -- redis-server --protected-mode no "$@"
fi
exec "$@"
