{#- salt-run state.orchestrate ag.retire: what ag.deploy installed, removed in the reverse
    order: the whole cluster, or with pillar='{"ag_retire": [NODE, ...]}' only those nodes.
    On the manager, the application (the stack, then the registry service; whole cluster
    only, with the files the deploy kept of it on every node), then the retiring nodes'
    pillar labels; on each retiring node its firewall, NFS and limits, the NFS server's after
    its clients'. Volumes, the checkout, Docker and the
    swarm itself stay (README, "Retiring a node or the cluster"). The pillar and the minions
    are checked first, as for ag.deploy; test=True tells what each step would remove. #}
{%- from 'ag/orchestrate.jinja' import preflight, run_steps with context %}
{{- preflight('ag.retire') }}
{%- from 'ag/map.jinja' import cluster, manager, nfs_node with context %}
{%- set nodes = cluster.nodes | list | sort %}
{%- set named = salt['pillar.get']('ag_retire', []) %}
{%- set retiring = (named | sort) if named else nodes %}
{%- set strangers = retiring | reject('in', nodes) | list %}
{%- if named is string or strangers %}
{{- raise("ag.retire: ag_retire must list nodes of autograder:cluster:nodes (" ~ nodes | join(", ")
          ~ "), not " ~ (named if named is string else strangers | join(", ")) ~ "; nothing was changed") }}
{%- endif %}
{%- if named and retiring != nodes and (manager in retiring or nfs_node in retiring) %}
{{- raise("ag.retire: " ~ (manager if manager in retiring else nfs_node) ~ " holds the cluster "
          ~ "(its manager, or the NFS server with the checkout): retire the whole cluster (no "
          ~ "ag_retire), or give that role to another node first; nothing was changed") }}
{%- endif %}
{%- set clients = retiring | reject('equalto', nfs_node) | list %}
{%- set node_clean = ['firewall.clean', 'nfs.clean', 'limits.clean'] %}

{{ run_steps('ag-retire', ([manager] + retiring) | unique | list, [
      ('ag-retire-app', ['ag.clean'], [] if named and retiring != nodes else nodes),
      ('ag-retire-labels', ['swarm.clean'], manager, {'ag_retire': retiring}),
      ('ag-retire-nodes', node_clean, clients),
      ('ag-retire-nfs-server', node_clean, [nfs_node] if nfs_node in retiring else []),
    ]) }}
