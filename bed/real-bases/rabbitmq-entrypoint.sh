#!/usr/bin/env bash
# The official rabbitmq image's docker-entrypoint.sh, as far as a stack relies on it: options
# as the first argument are rabbitmq-server's; the server runs as the rabbitmq user
# (gosu), owning its data dir (a fresh volume included).
set -euo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- rabbitmq-server "$@"
fi
if [[ "$1" == rabbitmq* ]] && [ "$(id -u)" = 0 ]; then
	if [ "$1" = rabbitmq-server ]; then
		find /var/lib/rabbitmq \! -user rabbitmq -exec chown rabbitmq '{}' +
	fi
	exec gosu rabbitmq "$BASH_SOURCE" "$@"
fi
exec "$@"
