{%- from "swarm/map.jinja" import swarm with context %}
# a swarm member needs its engine configured and running first
include:
  - docker

{%- if swarm.is_manager %}

swarm-initialized:
  ag_swarm.initialized:
    - name: {{ swarm.manager }}
    - advertise_addr: {{ swarm.node.address }}
    - members: {{ swarm.members | json }}
    - default_addr_pool: {{ swarm.default_addr_pool | json }}
    - default_addr_pool_mask_length: {{ swarm.default_addr_pool_mask_length }}
    - dispatcher_heartbeat: {{ swarm.dispatcher_heartbeat }}
    - require:
      - sls: docker
{%- endif %}
