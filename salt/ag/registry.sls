{#- The guide's "Create the Registry Service", on the manager. #}
{%- from 'ag/map.jinja' import registry with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

ag-registry:
  ag_app.registry:
    - name: {{ registry.name }}
    - image: {{ registry.image }}
    - port: {{ registry.port }}
    - publish_mode: {{ registry.publish_mode }}
    - volume: {{ registry.volume }}
    - require:
      - sls: docker.sdk
