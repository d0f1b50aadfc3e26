# The daemon.json keys this project owns, merged into the admin's file (their keys stay).
{%- from "docker/map.jinja" import docker with context %}
include:
  - docker.package

docker-config-daemon-json-merged:
  ag_node.daemon_json:
    - name: {{ docker.config_file }}
    - keys: {{ docker.daemon_keys | json }}
    - require:
      - sls: docker.package
