#!/bin/bash
# The bed's answer for https://deb.nodesource.com/setup_12.x (bed/plain_urls.py), run by
# `curl -sL ... | bash -` as root. NodeSource's script adds NodeSource's apt repository, so
# that the next `apt-get install nodejs` installs their Node 12 (with npm 6 inside; python3
# came with it, which the website's build scripts need). None of that can be reached here:
# this installs Node.js 12 from Debian's packages (bullseye's 12.22.12, the line NodeSource's
# setup_12.x ended with) with python3-minimal, and npm 6.14.16, the npm of Node 12.22.12's
# release, from the npm registry the image's npm config names (the bed's npm proxy), where
# NodeSource's package has it. The Dockerfile's own `apt-get install nodejs` after it finds
# nodejs installed.
# Also installed, because the bed does not serve node-sass's prebuilt binding (GitHub) and
# node-sass then builds it with node-gyp: python2 (node-gyp 3), make and g++, and Node's
# headers from Debian (libnode-dev), which npm's built-in config points node-gyp at
# (`nodedir`) instead of downloading them. Differences: bed/README.md.
set -e
export DEBIAN_FRONTEND=noninteractive
NPM_VERSION=6.14.16
NPMRC=/usr/etc/npmrc  # npm's global config when node is /usr/bin/node
echo "## The test bed's setup_12.x: Node.js 12 from Debian's packages, npm $NPM_VERSION"

apt-get update -q
apt-get install -y -q --no-install-recommends nodejs libnode-dev python3-minimal \
    python2 make g++
node --version

registry=$(sed -n 's/^registry *= *//p' "$NPMRC" 2>/dev/null | tail -n 1)
if [ -z "$registry" ]; then
    echo "setup_12.x (test bed): no registry in $NPMRC to fetch npm $NPM_VERSION from" >&2
    exit 1
fi
work=$(mktemp -d)
curl -fsS -H 'Accept: application/vnd.npm.install-v1+json' "${registry%/}/npm" \
    -o "$work/packument.json"
set -- $(node -e '
    const m = require(process.argv[1]).versions[process.argv[2]];
    if (!m) { console.error("the registry has no npm " + process.argv[2]); process.exit(1); }
    console.log(m.dist.tarball, m.dist.integrity);' "$work/packument.json" "$NPM_VERSION")
curl -fsS "$1" -o "$work/npm.tgz"
node -e '
    const [file, want] = process.argv.slice(1);
    const got = "sha512-" + require("crypto").createHash("sha512")
        .update(require("fs").readFileSync(file)).digest("base64");
    if (got !== want) { console.error("npm tarball: " + got + ", not " + want); process.exit(1); }
' "$work/npm.tgz" "$2"
# where NodeSource's nodejs package has npm
rm -rf /usr/lib/node_modules/npm
mkdir -p /usr/lib/node_modules/npm
tar -xzf "$work/npm.tgz" -C /usr/lib/node_modules/npm --strip-components=1 --no-same-owner
ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/bin/npm
ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/bin/npx
# npm's built-in config: node-gyp builds against Debian's headers of this node
echo "nodedir=/usr/include/nodejs" > /usr/lib/node_modules/npm/npmrc
rm -rf "$work"
echo "npm $(npm --version)"
