# The cluster's nodes, the minions autograder:cluster:nodes names, get the node states, the
# backup schedule, then the swarm; the other minions of a shared master get nothing from this
# tree. Each concern renders nothing (or a note) where it does not apply: the swarm and NFS
# only on cluster nodes, the backup schedule only on the database node.
{%- set nodes = salt["pillar.get"]("autograder:cluster:nodes", {}) | sort %}
{%- if nodes %}
base:
  {{ nodes | join(",") }}:
    - match: list
    - docker
    - limits
    - nfs
    - firewall
    - ag.backup
    - swarm
{%- else %}
base: {}
{%- endif %}
