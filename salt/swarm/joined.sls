{%- from "swarm/map.jinja" import swarm with context %}
# a swarm member needs its engine configured and running first
include:
  - docker

{%- if swarm.node and not swarm.is_manager %}

# the manager may be initializing its swarm in the same run: wait for its join token
swarm-joined:
  ag_swarm.joined:
    - name: {{ grains["id"] }}
    - manager: {{ swarm.manager }}
    - manager_addr: {{ swarm.manager_addr }}
    - advertise_addr: {{ swarm.node.address }}
    - role: {{ swarm.node.role }}
    - retry:
        attempts: 60
        interval: 1
    - require:
      - sls: docker
{%- endif %}
