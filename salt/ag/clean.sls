{#- The application undone on the manager when the cluster retires (ag.retire): the stack,
    then the registry service, each waited for until its tasks are gone. Their volumes (the
    database, the registry's images) and the checkout with its secrets stay: a retired
    cluster's data is the site's to keep or delete. #}
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
