#!/usr/bin/env bash
# The official postgres image's docker-entrypoint.sh, as far as a stack relies on it (see
# bed/README.md): as root it reads POSTGRES_PASSWORD(_FILE) and the other settings, makes
# $PGDATA the postgres user's and runs itself again as that user (gosu); on an empty
# $PGDATA it runs initdb with that password, lets every address in with it (md5), creates
# POSTGRES_DB and runs /docker-entrypoint-initdb.d/*; then it execs the server.
set -Eeo pipefail

# $1 from the environment, else the content of the file $1_FILE names (both: an error)
file_env() {
	local var="$1" file_var="${1}_FILE" default="${2:-}"
	if [ "${!var:-}" ] && [ "${!file_var:-}" ]; then
		echo >&2 "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	local val="$default"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!file_var:-}" ]; then
		val="$(< "${!file_var}")"
	fi
	export "$var"="$val"
	unset "$file_var"
}

setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	export POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-md5}"
}

init_database() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOM'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
		EOM
		exit 1
	fi
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS holds several options
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
	# the init scripts talk to a server that listens on its socket only
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
	local psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres)
	if [ "$POSTGRES_DB" != postgres ]; then
		"${psql[@]}" -c "CREATE DATABASE \"$POSTGRES_DB\";"
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh) . "$f" ;;
			*.sql) "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
			*.sql.gz) gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	echo 'PostgreSQL init process complete; ready for start up.'
}

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi
if [ "$1" = postgres ]; then
	setup_env
	if [ "$(id -u)" = 0 ]; then
		mkdir -p "$PGDATA" /var/run/postgresql
		chown -R postgres:postgres "$PGDATA" /var/run/postgresql
		chmod 700 "$PGDATA"
		chmod 2777 /var/run/postgresql
		exec gosu postgres "$BASH_SOURCE" "$@"
	fi
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		init_database
	fi
fi
exec "$@"
