# dockerd enabled and running; restarted only when daemon.json really changed.
{%- from "docker/map.jinja" import docker with context %}
include:
  - docker.config

docker-service-running:
  service.running:
    - name: {{ docker.service }}
    - enable: True
    - watch:
      - ag_node: docker-config-daemon-json-merged
