# The admins from the pillar in the docker group (the guide's usermod -aG docker).
{%- from "docker/map.jinja" import docker with context %}
{%- if docker.users %}
include:
  - docker.package

docker-users-group-present:
  group.present:
    - name: docker
    - addusers: {{ docker.users | json }}
    - require:
      - sls: docker.package
{%- endif %}
