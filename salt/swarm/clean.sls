{%- from "swarm/map.jinja" import swarm with context %}
{#- On the manager: the labels the pillar gives the retiring nodes (ag.retire passes them as
    ag_retire; by default every node of autograder:cluster) removed from their swarm nodes,
    every other label left. The swarm itself, its members and the overlay network stay:
    docker swarm leave on a node takes it out. #}
# the ag_swarm states work through the ag_swarm execution module, which needs the docker SDK
include:
  - docker.sdk
{%- if swarm.is_manager %}
{%-   set nodes = {} %}
{%-   for id in salt["pillar.get"]("ag_retire") or swarm.cluster.nodes %}
{%-     do nodes.update({id: (swarm.cluster.nodes.get(id) or {}).get("labels") or []}) %}
{%-   endfor %}

swarm-clean-labels-absent:
  ag_swarm.labels_absent:
    - name: autograder:cluster
    - nodes: {{ nodes | json }}
    - require:
      - sls: docker.sdk
{%- endif %}
