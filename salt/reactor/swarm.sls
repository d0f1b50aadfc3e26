{#- Swarm events of the ag_swarm states, answered on the manager they name (labels and join
    tokens can only come from a manager):
      ag/swarm/node/joined   a node joined: label it (swarm.labels), withdraw the join token
                             nobody waits for now (swarm.initialized)
      ag/swarm/token/wanted  a node new to the pillar wants its join token (swarm.initialized
                             publishes the tokens for the members of the manager's own pillar)
    The runner ag.swarm_event answers only a sender that the manager's pillar names a node of
    its cluster: an event from any other accepted minion starts nothing. #}
{%- set manager = data.get("data", data).get("manager", "") | string %}
{%- if manager | regex_match("^([A-Za-z0-9][A-Za-z0-9._-]*)$") %}
swarm-event-on-manager:
  runner.ag.swarm_event:
    - args:
      - tag: {{ tag | json }}
      - sender: {{ data.get("id", "") | string | json }}
      - manager: {{ manager | json }}
{%- endif %}
