#!/bin/bash
# tests/unit, tests/functional and the master installed as the README says
# (tests/integration/test_master_install.py, no bed needed) against each Salt line sites run
# (3006 LTS, 3007, 3008), each in a venv of its own with requirements.txt's other test pins;
# venvs are kept for the next run. Prints each line's result and time; exits non-zero when a
# line failed or did not install.
#   tests/salt-versions.sh [SALT_VERSION...]    (default: the newest of each older line that
#   installs; requirements.txt's own Salt, of the 3008 line, runs every test in ./testbed test)
# 3006.30 and 3007.17 need certifi>=2026.10.23, which the package index this was measured
# against did not have yet: the defaults are the releases before them.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE=${AG_SALT_VERSIONS_DIR:-/var/tmp/agbed/salt-versions}
[ $# -gt 0 ] || set -- 3006.29 3007.16
PINS=$(grep -E '^(docker|PyYAML|pytest|pytest-salt-factories|hypothesis)==' "$REPO/requirements.txt")

failed=0
summary=()
for version in "$@"; do
  root=$BASE/$version  # laid out as the bed's root (root/venv), so bed.config finds its salt-call
  started=$(date +%s)
  # every run, so a venv follows requirements.txt; quick when it already does
  [ -x "$root/venv/bin/pip" ] || { mkdir -p "$root" && python3 -m venv "$root/venv"; }
  if ! "$root/venv/bin/pip" install -q --disable-pip-version-check "salt==$version" $PINS \
       > "$root/install.log" 2>&1; then
    summary+=("salt $version: does not install ($(grep '^ERROR' "$root/install.log" | tail -1); $root/install.log)")
    failed=1
    continue
  fi
  summary+=("salt $version: installed (or up to date) in $(( $(date +%s) - started )) s")
  started=$(date +%s)
  (cd "$REPO" && AG_BED_ROOT=$root "$root/venv/bin/python" -m pytest -q -p no:cacheprovider \
     tests/unit tests/functional tests/integration/test_master_install.py) > "$root/pytest.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || failed=1
  outcome=$(grep -E '[0-9]+ (passed|failed|errors?)' "$root/pytest.log" | tail -1 | tr -d '=')
  summary+=("salt $version: ${outcome:-no pytest summary} (exit $rc, $(( $(date +%s) - started )) s; $root/pytest.log)")
done
printf '%s\n' "${summary[@]}"
exit $failed
