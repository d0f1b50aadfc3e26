{%- from "swarm/map.jinja" import swarm with context %}
# Labels can only be set on a manager: the manager labels every pillar node, sets its
# availability, and takes out (drain, tasks gone, labels removed, Down: removed) the members
# no longer in pillar. The reactor applies this SLS on the manager when a node joins
# (salt/reactor/swarm.sls), and a sysadmin after a label edit: so it is this one state
# alone (the state itself refuses a node that manages no swarm), not the docker and swarm
# states a first deploy needs; swarm/init.sls orders it after swarm-initialized.
include:
  - docker.sdk
{%- if swarm.is_manager %}

swarm-labels-reconciled:
  ag_swarm.labels_reconciled:
    - name: autograder:cluster
    - cluster: {{ swarm.cluster | json }}
    - drain_timeout: {{ swarm.drain_timeout }}
    - require:
      - sls: docker.sdk
{%- endif %}
