{#- salt-run state.orchestrate ag.deploy: the deployment guide from bare nodes to a running,
    migrated, bootstrapped autograder. Each step stops the run on failure (failhard) and its
    comment names the step, the node and the cause. The pillar is checked first (ag.validate):
    an invalid one stops the rendering, so nothing changes; so does a cluster node whose minion
    does not answer (ag.unanswered). Then every step is tested on its nodes at once (the
    check step), and the steps run from the first that would change something on: a deploy
    with nothing to do is that check alone. test=True tells what each step would change. #}
{%- from 'ag/orchestrate.jinja' import preflight, run_checked_steps with context %}
{{- preflight('ag.deploy') }}
{%- from 'ag/map.jinja' import cluster, manager, nfs_node with context %}
{%- set nodes = cluster.nodes | list | sort %}
{%- set web_nodes = [] %}
{%- set django_nodes = [] %}
{%- set database_nodes = [] %}
{%- for node, spec in cluster.nodes | dictsort %}
{%-   do web_nodes.append(node) if 'webserver' in (spec.labels or []) %}
{%-   do django_nodes.append(node) if 'django_app' in (spec.labels or []) %}
{%-   do database_nodes.append(node) if 'database' in (spec.labels or []) %}
{%- endfor %}

{#- the guide's steps in order, each on the nodes it concerns; a step with no node to run on
    (no node labelled webserver: no TLS files to check) is left out. The migrations run in the
    django task, on a node labelled django_app; the running database takes the generated
    password on the node labelled database #}
{{ run_checked_steps('ag.deploy', 'ag-deploy', [
      ('ag-deploy-roll', 'ag_master.dockerd_rolled', 'master'),
      ('ag-deploy-node-states', ['docker', 'limits', 'nfs', 'firewall', 'ag.backup'], nodes),
      ('ag-deploy-swarm', ['swarm'], nodes),
      ('ag-deploy-tls', ['ag.tls'], web_nodes),
      ('ag-deploy-checkout', ['ag.checkout'], nfs_node),
      ('ag-deploy-backup', 'ag_master.backed_up_before_upgrade', 'master'),
      ('ag-deploy-tweaks', ['ag.tweaks'], nfs_node),
      ('ag-deploy-registry', ['ag.registry'], manager),
      ('ag-deploy-images', ['ag.images'], nfs_node),
      ('ag-deploy-secrets', ['ag.secrets'], nfs_node),
      ('ag-deploy-database', ['ag.database'], database_nodes),
      ('ag-deploy-stack', ['ag.stack'], manager),
      ('ag-deploy-migrate', ['ag.migrate'], django_nodes),
    ]) }}
