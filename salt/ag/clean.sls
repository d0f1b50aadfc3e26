{#- The application undone when the cluster retires (ag.retire): on the manager the stack,
    then the registry service, each waited for until its tasks are gone; on every node the
    files the deploy kept of the stack there. Their volumes (the database, the registry's
    images) and the checkout with its secrets stay: a retired cluster's data is the site's to
    keep or delete. #}
{%- from 'ag/map.jinja' import app, registry, manager with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk
{%- if grains['id'] == manager %}

ag-clean-stack-absent:
  ag_app.stack_absent:
    - name: {{ app.stack_name }}
    - require:
      - sls: docker.sdk

ag-clean-registry-absent:
  ag_app.service_absent:
    - name: {{ registry.name }}
    - require:
      - ag_app: ag-clean-stack-absent
{%- endif %}

ag-clean-records-absent:
  ag_app.records_absent:
    - name: {{ app.stack_name }}
    - require:
      - sls: docker.sdk
{%- if grains['id'] == manager %}
      - ag_app: ag-clean-stack-absent
{%- endif %}
