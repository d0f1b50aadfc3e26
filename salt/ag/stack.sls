{#- The guide's `docker stack deploy`, on the manager, then the wait for every service. The
    state computes the override (worker counts, each secret file a swarm secret at its own
    path, postgres reading the database password secret, the postgres version, 80/443 on the
    webserver node only; see _utils/ag_compose.py) from the checkout, so test=True judges
    what a deploy would deploy; the deploy writes it to /var/lib/ag-deploy/. #}
{%- from 'ag/map.jinja' import app, compose_files with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

ag-stack-deployed:
  ag_app.stack_deployed:
    - name: {{ app.stack_name }}
    - checkout: {{ app.checkout }}
    - compose_files: {{ compose_files | json }}
    - workers: {{ app.gunicorn_workers }}
    - concurrency: {{ app.celery_concurrency | json }}
    - postgres_version: {{ app.postgres_version | json }}
    - web_on_webserver_only: {{ app.web_on_webserver_only | json }}
    - worker_stop_grace_period: {{ app.worker_stop_grace_period }}
    - require:
      - sls: docker.sdk

ag-stack-converged:
  ag_app.converged:
    - name: {{ app.stack_name }}
    - timeout: {{ app.converge_timeout }}
    - require:
      - ag_app: ag-stack-deployed
