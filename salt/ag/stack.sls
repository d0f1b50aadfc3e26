{#- The guide's `docker stack deploy`, on the manager, then the wait for every service. #}
{%- from 'ag/map.jinja' import app, compose_files with context %}
ag-stack-deployed:
  ag_app.stack_deployed:
    - name: {{ app.stack_name }}
    - checkout: {{ app.checkout }}
    - compose_files: {{ compose_files | json }}

ag-stack-converged:
  ag_app.converged:
    - name: {{ app.stack_name }}
    - timeout: {{ app.converge_timeout }}
    - require:
      - ag_app: ag-stack-deployed
