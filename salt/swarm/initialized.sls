{%- from "swarm/map.jinja" import swarm with context %}
{%- if swarm.is_manager %}

swarm-initialized:
  ag_swarm.initialized:
    - name: {{ swarm.manager }}
    - advertise_addr: {{ swarm.node.address }}
    - members: {{ swarm.members | json }}
    - default_addr_pool: {{ swarm.default_addr_pool | json }}
    - default_addr_pool_mask_length: {{ swarm.default_addr_pool_mask_length }}
{%- endif %}
