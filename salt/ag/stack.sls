{#- The guide's `docker stack deploy`, on the manager, then the wait for every service. The
    override (worker counts from the pillar, the secrets mounted read-only; see
    _utils/ag_compose.py) is computed from the checkout's compose file here, so test=True
    judges what a deploy would deploy; the deploy writes it to /var/lib/ag-deploy/. #}
{%- from 'ag/map.jinja' import app, compose_files with context %}
ag-stack-deployed:
  ag_app.stack_deployed:
    - name: {{ app.stack_name }}
    - checkout: {{ app.checkout }}
    - compose_files: {{ compose_files | json }}
    - override: {{ salt['ag_compose.override'](app.checkout, app.gunicorn_workers, app.celery_concurrency) | json }}

ag-stack-converged:
  ag_app.converged:
    - name: {{ app.stack_name }}
    - timeout: {{ app.converge_timeout }}
    - require:
      - ag_app: ag-stack-deployed
