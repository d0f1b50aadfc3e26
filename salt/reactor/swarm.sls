{#- Swarm events of the ag_swarm states, answered on the manager they name (labels and join
    tokens can only come from a manager):
      ag/swarm/node/joined   a node joined: label it (swarm.labels)
      ag/swarm/token/wanted  a node new to the pillar wants its join token (swarm.initialized
                             publishes the tokens for the members of the manager's own pillar)
    Both SLS render no state on a minion that is not the manager in its own pillar, so an
    event cannot make any other minion do anything. queue: the manager may be mid-highstate. #}
{%- set mods = {"ag/swarm/node/joined": "swarm.labels",
                "ag/swarm/token/wanted": "swarm.initialized"}.get(tag) %}
{%- set manager = data.get("data", data).get("manager", "") | string %}
{%- if mods and manager | regex_match("^([A-Za-z0-9][A-Za-z0-9._-]*)$") %}
swarm-event-on-manager:
  local.state.sls:
    - tgt: {{ manager }}
    - args:
      - mods: {{ mods }}
      - queue: true
{%- endif %}
