{#- salt-run state.orchestrate ag.deploy: the deployment guide from bare nodes to a running,
    migrated, bootstrapped autograder. Each step stops the run on failure (failhard) and its
    comment names the step, the node and the cause. The pillar is checked first (ag.validate):
    an invalid one stops the rendering, so nothing changes; so does a cluster node whose minion
    does not answer (ag.unanswered). test=True tells what each step
    would change. #}
{#- the master's ag runner and _utils/ as this checkout has them now (the nodes get theirs in
    the sync step): a master never synced, or synced before the last update, would fail or
    validate by older rules #}
{%- do salt['saltutil.runner']('saltutil.sync_utils') %}
{%- do salt['saltutil.runner']('saltutil.sync_runners') %}
{%- set check = salt['saltutil.runner']('ag.validate') %}
{%- if not check.valid %}
{{- raise("ag.deploy, step validate: invalid autograder pillar; nothing was changed:\n"
          ~ check.errors | join("\n")) }}
{%- endif %}
{%- set silent = salt['saltutil.runner']('ag.unanswered') %}
{%- if silent %}
{{- raise("ag.deploy, step reach: no answer from the minion of " ~ silent | join(", ")
          ~ "; nothing was changed. Start its salt-minion (and check its key is accepted: "
          ~ "salt-key -L), or take the node out of autograder:cluster:nodes") }}
{%- endif %}
{%- from 'ag/map.jinja' import cluster, manager, nfs_node with context %}
{%- set nodes = cluster.nodes | list | sort %}
{%- set web_nodes = [] %}
{%- for node, spec in cluster.nodes | dictsort if 'webserver' in (spec.labels or []) %}
{%-   do web_nodes.append(node) %}
{%- endfor %}

{%- macro target(tgt) %}
{%- if tgt is string %}
    - tgt: {{ tgt }}
{%- else %}
    - tgt: {{ tgt | json }}
    - tgt_type: list
{%- endif %}
{%- endmacro %}

{#- this repo's modules and states on every node first: a state run does not load what its
    own sync brought #}
ag-deploy-sync:
  salt.function:
    - name: saltutil.sync_all
{{- target(nodes) }}
    - failhard: True

{#- the guide's steps in order, each on the nodes it concerns, each after the one before; a step
    with no node to run on (no node labelled webserver: no TLS files to check) is left out #}
{%- set steps = [
      ('ag-deploy-node-states', ['docker', 'limits', 'nfs', 'firewall'], nodes),
      ('ag-deploy-swarm', ['swarm'], nodes),
      ('ag-deploy-tls', ['ag.tls'], web_nodes),
      ('ag-deploy-checkout', ['ag.checkout'], nfs_node),
      ('ag-deploy-tweaks', ['ag.tweaks'], nfs_node),
      ('ag-deploy-secrets', ['ag.secrets'], nfs_node),
      ('ag-deploy-registry', ['ag.registry'], manager),
      ('ag-deploy-images', ['ag.images'], nfs_node),
      ('ag-deploy-stack', ['ag.stack'], manager),
      ('ag-deploy-migrate', ['ag.migrate'], nodes),
    ] | selectattr('2') | list %}
{%- for id, sls, tgt in steps %}

{{ id }}:
  salt.state:
{{- target(tgt) }}
    - sls: {{ sls | json }}
    - failhard: True
    {#- the swarm reactor may be labelling a node that just joined #}
    - queue: True
    - require:
      - salt: {{ 'ag-deploy-sync' if loop.first else loop.previtem[0] }}
{%- endfor %}
