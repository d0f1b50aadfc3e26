# The cluster's swarm (deployment guide: "Initialize the Swarm", "Label the Nodes"): the
# manager initializes it, every other node of autograder:cluster joins, the manager creates
# the overlay network and labels every node from the pillar.
include:
  - swarm.initialized
  - swarm.joined
  - swarm.network
  - swarm.labels
{%- from "swarm/map.jinja" import swarm with context %}
{%- if swarm.is_manager %}

# swarm.labels stands alone (a label edit applies only it); here it follows the swarm's init
extend:
  swarm-labels-reconciled:
    ag_swarm:
      - require:
        - ag_swarm: swarm-initialized
{%- endif %}
