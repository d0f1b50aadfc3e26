{#- docker-compose.ag.yml next to upstream's docker-compose.yml: worker counts from the pillar
    and the secrets mounted read-only (see _utils/ag_compose.py). #}
{%- from 'ag/map.jinja' import app with context %}
ag-override:
  file.serialize:
    - name: {{ app.checkout }}/docker-compose.ag.yml
    - serializer: yaml
    - dataset: {{ salt['ag_compose.override'](app.checkout, app.gunicorn_workers, app.celery_concurrency) | json }}
