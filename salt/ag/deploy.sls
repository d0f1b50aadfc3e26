{#- salt-run state.orchestrate ag.deploy: the deployment guide from bare nodes to a running,
    migrated, bootstrapped autograder. Each step stops the run on failure (failhard) and its
    comment names the step, the node and the cause. The pillar is checked first (ag.validate):
    an invalid one stops the rendering, so nothing changes. test=True tells what each step
    would change. #}
{%- set check = salt['saltutil.runner']('ag.validate') %}
{%- if not check.valid %}
{{- raise("ag.deploy, step validate: invalid autograder pillar; nothing was changed:\n"
          ~ check.errors | join("\n")) }}
{%- endif %}
{%- from 'ag/map.jinja' import app, cluster, manager, nfs_node with context %}
{%- set nodes = cluster.nodes | list | sort %}

{%- macro target(tgt) %}
{%- if tgt is string %}
    - tgt: {{ tgt }}
{%- else %}
    - tgt: {{ tgt | json }}
    - tgt_type: list
{%- endif %}
{%- endmacro %}

{%- macro step(id, sls, tgt, require) %}
{{ id }}:
  salt.state:
{{- target(tgt) }}
    - sls: {{ sls | json }}
    - failhard: True
    {#- the swarm reactor may be labelling a node that just joined #}
    - queue: True
    - require:
      - salt: {{ require }}
{%- endmacro %}

{#- this repo's modules and states on every node first: a state run does not load what its
    own sync brought #}
ag-deploy-sync:
  salt.function:
    - name: saltutil.sync_all
{{- target(nodes) }}
    - failhard: True

{{ step('ag-deploy-node-states', ['docker', 'limits', 'nfs'], nodes, 'ag-deploy-sync') }}
{{ step('ag-deploy-swarm', ['swarm'], nodes, 'ag-deploy-node-states') }}
{{ step('ag-deploy-checkout', ['ag.checkout'], nfs_node, 'ag-deploy-swarm') }}
{{ step('ag-deploy-tweaks', ['ag.tweaks'], nfs_node, 'ag-deploy-checkout') }}
{{ step('ag-deploy-secrets', ['ag.secrets'], nfs_node, 'ag-deploy-tweaks') }}
{{ step('ag-deploy-override', ['ag.override'], nfs_node, 'ag-deploy-secrets') }}
{{ step('ag-deploy-registry', ['ag.registry'], manager, 'ag-deploy-override') }}
{{ step('ag-deploy-images', ['ag.images'], nfs_node, 'ag-deploy-registry') }}
{{ step('ag-deploy-stack', ['ag.stack'], manager, 'ag-deploy-images') }}
{{ step('ag-deploy-migrate', ['ag.migrate'], nodes, 'ag-deploy-stack') }}
