{#- The guide's "Create the Registry Service", on the manager. #}
{%- from 'ag/map.jinja' import registry with context %}
ag-registry:
  ag_app.registry:
    - name: {{ registry.name }}
    - image: {{ registry.image }}
    - port: {{ registry.port }}
    - publish_mode: {{ registry.publish_mode }}
    - volume: {{ registry.volume }}
