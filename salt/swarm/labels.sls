{%- from "swarm/map.jinja" import swarm with context %}
# Labels can only be set on a manager: the manager labels every pillar node, sets its
# availability, and takes out (drain, tasks gone, labels removed, Down: removed) the members
# no longer in pillar. The reactor applies this SLS on the manager when a node joins
# (salt/reactor/swarm.sls).
include:
  - swarm.initialized
{%- if swarm.is_manager %}

swarm-labels-reconciled:
  ag_swarm.labels_reconciled:
    - name: autograder:cluster
    - cluster: {{ swarm.cluster | json }}
    - drain_timeout: {{ swarm.drain_timeout }}
    - require:
      - ag_swarm: swarm-initialized
{%- endif %}
