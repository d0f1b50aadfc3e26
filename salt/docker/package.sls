# The engine's packages from the source the pillar picks; nothing for source external.
{%- from "docker/map.jinja" import docker with context %}
{%- set pkgs = docker.pkgs.get(docker.source) %}
{%- if pkgs is none %}

docker-package-unknown-source:
  test.fail_without_changes:
    - comment: >-
        autograder:docker:source is {{ docker.source }} on {{ grains["id"] }}; it must be
        docker-ce, distro or external.
{%- elif pkgs %}
{%-   if docker.source == "docker-ce" %}
include:
  - docker.repo
{%-   endif %}

docker-package-pkg-installed:
  pkg.installed:
    - pkgs: {{ pkgs | json }}
    - install_recommends: {{ docker.recommends[docker.source] | json }}
{%-   if docker.hold is not none %}
    - hold: {{ docker.hold | json }}
{%-   endif %}
{%-   if docker.source == "docker-ce" %}
    - require:
      - sls: docker.repo
{%-   endif %}
{%- else %}

docker-package-external:
  test.succeed_without_changes:
    - name: Docker is installed by someone else on {{ grains["id"] }} (source external)
{%- endif %}
