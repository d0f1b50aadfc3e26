{#- Applied on every cluster node; only the node that runs the django task acts. #}
{%- from 'ag/map.jinja' import app with context %}
ag-migrated:
  ag_app.migrated:
    - name: {{ app.stack_name }}_django

ag-bootstrapped:
  ag_app.bootstrapped:
    - name: {{ app.stack_name }}_django
    - admins: {{ app.bootstrap.admins | json }}
    - course: {{ app.bootstrap.course | json }}
    - require:
      - ag_app: ag-migrated
