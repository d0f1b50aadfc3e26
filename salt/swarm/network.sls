{%- from "swarm/map.jinja" import swarm with context %}
include:
  - swarm.initialized
{%- if swarm.is_manager %}

swarm-network-present:
  ag_swarm.network_present:
    - name: {{ swarm.network.name }}
    - driver: overlay
    - attachable: {{ swarm.network.attachable | json }}
    - encrypted: {{ swarm.network.encrypted | json }}
    - subnet: {{ swarm.network.subnet | json }}
    - require:
      - ag_swarm: swarm-initialized
{%- endif %}
