# Docker's own apt repository, the current way: an armoured key in /etc/apt/keyrings and a
# deb822 source that names it with Signed-By. Only for source docker-ce.
{%- from "docker/map.jinja" import docker with context %}
{%- if docker.source == "docker-ce" %}
{%-   if docker.get("repo_os") and docker.suite in docker.get("releases", []) %}

docker-repo-key-file-managed:
  file.managed:
    - name: {{ docker.repo.key_file }}
    - source: {{ docker.repo.url }}/{{ docker.repo_os }}/gpg
    - source_hash: {{ docker.repo.key_hash }}
    - makedirs: True
    - dir_mode: '0755'
    - mode: '0644'

docker-repo-legacy-source-file-absent:
  file.absent:
    - name: {{ docker.repo.legacy_sources_file }}

docker-repo-sources-file-managed:
  file.managed:
    - name: {{ docker.repo.sources_file }}
    - mode: '0644'
    - contents: |
        # managed by Salt (autograder docker.repo)
        Types: deb
        URIs: {{ docker.repo.url }}/{{ docker.repo_os }}
        Suites: {{ docker.suite }}
        Components: {{ docker.repo.component }}
        Architectures: {{ docker.arch }}
        Signed-By: {{ docker.repo.key_file }}
    - require:
      - file: docker-repo-key-file-managed
      - file: docker-repo-legacy-source-file-absent

docker-repo-apt-refresh:
  module.run:
    - pkg.refresh_db: []
    - onchanges:
      - file: docker-repo-key-file-managed
      - file: docker-repo-sources-file-managed
{%-   else %}

docker-repo-unsupported-os:
  test.fail_without_changes:
    - comment: >-
        Docker's repository is set up here for Ubuntu 22.04/24.04 and Debian 12, but
        {{ grains["id"] }} runs {{ grains["os"] }} {{ grains.get("osrelease", "") }}
        ({{ docker.suite }}): set autograder:docker:source to distro or external.
{%-   endif %}
{%- endif %}
