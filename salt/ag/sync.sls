{#- This repository's utils, modules and states on the node, for the orchestrations' later
    steps: one job for the three kinds (saltutil.sync_all asks the master for twenty, about
    20 s for three nodes at native speed), each reported as a change only when it brought
    something. The saltenv given spares each a render of the top file. #}
{%- for kind in ['utils', 'modules', 'states'] %}
ag-sync-{{ kind }}:
  saltutil.sync_{{ kind }}:
    - saltenv: {{ saltenv }}
    {#- the minion reloads its modules once, after the last #}
    - refresh: {{ loop.last }}
{%- endfor %}
