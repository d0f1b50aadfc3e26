#!/bin/bash
# The guide's deploy typed by hand, on tier 1 of the bed (the baseline of bench/deploy.py):
# swarm init/join, labels, network, the registry service, build + push of every image,
# `docker stack deploy`, the wait, migrate. Docker CLI only, as a sysadmin would run it on each
# node. The bed's pillar gives the nodes and labels; the bed's checkout, certificate and
# 127.0.0.1:5000 forwarders are already there (as for the orchestration).
#
#   AG_BED_ID=K bench/guide_by_hand.sh [STACK]
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:-ag-stack}
bed() { ./testbed exec "$@"; }
py=/var/tmp/agbed/venv/bin/python
pillar=$($py -c 'from bed import config; print(config.PILLAR_DIR / "bed.sls")')
# "node address label,label" per line, the manager first
nodes=$($py - "$pillar" <<'EOF'
import sys, yaml
cluster = yaml.safe_load(open(sys.argv[1]))["autograder"]["cluster"]
order = sorted(cluster["nodes"], key=lambda n: n != cluster["manager"])
for n in order:
    print(n, cluster["nodes"][n]["address"], ",".join(cluster["nodes"][n].get("labels") or []) or "-")
EOF
)
read -r manager manager_addr _ <<<"$nodes"
checkout=/srv/autograder-full-stack

# Initialize the swarm, join the others, label the nodes, the overlay network
if [ "$(bed "$manager" docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  bed "$manager" docker swarm init --advertise-addr "$manager_addr" \
    --default-addr-pool 198.19.64.0/18 --default-addr-pool-mask-length 24 >/dev/null
fi
token=$(bed "$manager" docker swarm join-token -q worker)
while read -r node addr labels; do
  if [ "$node" != "$manager" ] && [ "$(bed "$node" docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
    bed "$node" docker swarm join --advertise-addr "$addr" --token "$token" "$manager_addr:2377" >/dev/null
  fi
  [ "$labels" = - ] || bed "$manager" sh -c "docker node update $(printf -- '--label-add %s=true ' ${labels//,/ }) $node >/dev/null"
done <<<"$nodes"
bed "$manager" sh -c 'docker network inspect ag-swarm-network >/dev/null 2>&1 ||
  docker network create -d overlay ag-swarm-network >/dev/null'

# Create the registry service (host mode: the bed has no IPVS; its forwarders do the mesh's job)
bed "$manager" sh -c 'docker service inspect registry >/dev/null 2>&1 ||
  docker service create -d --name registry --publish mode=host,published=5000,target=5000 \
    --mount type=volume,source=ag-registry,destination=/var/lib/registry \
    --constraint "node.labels.registry == true" registry:2 >/dev/null
  until curl -sf -m 2 http://127.0.0.1:5000/v2/ >/dev/null; do sleep 0.5; done'

# First steps on the checkout (generate_secrets.py in the guide's venv with Django and
# python-gnupg: here the stand-in's; a real release's secrets are made before the bench times
# anything, bench/deploy.py --real), then build and push every image the compose file builds
bed "$manager" sh -ec "cd $checkout/autograder-server && mkdir -p media_root &&
  if [ ! -e autograder/settings/secrets/gpg_key_password ]; then
    PYTHONPATH=standin python3 generate_secrets.py >/dev/null
  fi"
builds=$($py - "$(./testbed exec "$manager" cat $checkout/docker-compose.yml | base64 -w0)" <<'EOF'
import base64, sys, yaml
services = yaml.safe_load(base64.b64decode(sys.argv[1]))["services"]
seen = {}
for svc in services.values():
    if "build" in svc:
        b = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
        seen.setdefault((b["context"], b.get("dockerfile", "Dockerfile")), []).append(svc["image"])
for (context, dockerfile), images in seen.items():
    print(context, dockerfile, *sorted(set(images)))
EOF
)
while read -r context dockerfile first others; do
  bed "$manager" sh -ec "cd $checkout && DOCKER_BUILDKIT=0 docker build -q -t $first -f $context/$dockerfile $context >/dev/null
    for tag in $others; do docker tag $first \$tag; done
    for tag in $first $others; do docker push -q \$tag >/dev/null; done"
done <<<"$builds"

# Deploy the stack and wait until every service runs what it wants. Today's docker refuses
# upstream's compose file (postgres and redis set `image:` twice); a sysadmin deletes the
# first of each, which older docker ignored
bed "$manager" sh -ec "cd $checkout && sed -i '/^    image: 127\.0\.0\.1:5000\/\(postgres\|redis\)$/d' docker-compose.yml
  docker stack deploy -c docker-compose.yml -c docker-compose.bed.yml $stack >/dev/null"
bed "$manager" sh -c "until docker stack services $stack --format '{{.Replicas}}' |
  awk -F/ '\$1 != \$2 {bad=1} END {exit bad}'; do sleep 1; done"

# Finish setting up the database: migrate in the django container, on its node
django_node=$(bed "$manager" docker service ps "${stack}_django" --filter desired-state=running --format '{{.Node}}' | head -1)
bed "$django_node" sh -c "docker exec \$(docker ps -q -f label=com.docker.swarm.service.name=${stack}_django | head -1) \
  python3 manage.py migrate --noinput >/dev/null"
