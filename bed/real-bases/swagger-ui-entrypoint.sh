#!/bin/sh
# The look-alike of swaggerapi/swagger-ui's start (bed/README.md): the OpenAPI document that
# SWAGGER_JSON names (or the URL that URL names) is served by nginx on 8080 with an index
# page that links it; the official image's Swagger UI JavaScript is not there (Debian has none).
set -e
html=/usr/share/nginx/html
spec=${URL:-}
if [ -n "${SWAGGER_JSON:-}" ]; then
	cp "$SWAGGER_JSON" "$html/"
	spec=$(basename "$SWAGGER_JSON")
fi
printf '<!doctype html>\n<title>Swagger UI</title>\n<h1>API documentation</h1>\n<p><a href="%s">%s</a></p>\n' \
	"$spec" "$spec" > "$html/index.html"
exec "$@"
