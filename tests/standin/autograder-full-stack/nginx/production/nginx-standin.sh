#!/bin/sh
# Stand-in nginx: fails at start where nginx fails (a certificate, key or dhparam file named
# in conf.d is missing; a proxy_pass host does not resolve), then answers on every `listen`
# port with a page showing the settings a deployer tweaks (server_name, client_max_body_size),
# and at /tls the digest of the certificate and key it loaded: at start, and again on
# `nginx -s reload` (SIGHUP to the master process, as nginx does).
if [ "$1" = "-s" ] && [ "$2" = "reload" ]; then
  kill -HUP 1 && exit 0
  echo 'nginx: [error] invalid PID number "" in "/run/nginx.pid"' >&2; exit 1
fi
trap 'exit 0' TERM INT
conf=$(cat /etc/nginx/conf.d/*.conf) || { echo 'nginx: [emerg] no conf in /etc/nginx/conf.d' >&2; exit 1; }
tls_files=$(echo "$conf" | sed -n 's/^ *ssl_\(certificate\|certificate_key\) \+\([^;]*\);.*/\2/p')
for f in $tls_files $(echo "$conf" | sed -n 's/^ *ssl_dhparam \+\([^;]*\);.*/\1/p'); do
  [ -r "$f" ] || { echo "nginx: [emerg] cannot load certificate \"$f\": BIO_new_file() failed" >&2; exit 1; }
done
for host in $(echo "$conf" | sed -n 's|^ *proxy_pass \+https\?://\([^:/;]\+\).*|\1|p' | sort -u); do
  nslookup "$host" 127.0.0.11 >/dev/null 2>&1 || { echo "nginx: [emerg] host not found in upstream \"$host\"" >&2; exit 1; }
done
load_tls() {
  cat $tls_files | sha256sum | cut -d' ' -f1 > /var/www/tls
}
load_tls
trap 'load_tls' HUP
{
  echo "$conf" | grep -E '^ *(server_name|client_max_body_size) ' | sed 's/^ *//'
} > /var/www/index.html
for port in $(echo "$conf" | sed -n 's/^ *listen \+\([0-9]\+\).*/\1/p' | sort -u); do
  httpd -f -p "$port" -h /var/www &
done
echo "nginx stand-in ready"
while kill -0 "$!" 2>/dev/null; do wait "$!"; done  # a reload interrupts the wait
