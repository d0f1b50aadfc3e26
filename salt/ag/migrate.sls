{#- Applied on the nodes labelled django_app; only the one that runs the django task acts. #}
{%- from 'ag/map.jinja' import app with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

ag-migrated:
  ag_app.migrated:
    - name: {{ app.stack_name }}_django
    - require:
      - sls: docker.sdk

ag-bootstrapped:
  ag_app.bootstrapped:
    - name: {{ app.stack_name }}_django
    - admins: {{ app.bootstrap.admins | json }}
    - course: {{ app.bootstrap.course | json }}
    - require:
      - ag_app: ag-migrated
