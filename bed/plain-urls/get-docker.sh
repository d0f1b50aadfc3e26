#!/bin/sh
# The bed's answer for https://get.docker.com (bed/plain_urls.py): Docker from the
# distribution's packages (docker.io, through the image's apt proxy), where the real script
# adds Docker's own repository and installs Docker CE. The grader image only needs the CLI.
set -e
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io
docker --version
