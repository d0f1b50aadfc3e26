# The docker Python SDK where this minion's Salt imports it: the ag_swarm and ag_app execution
# modules, and so their states, talk to Docker through it. pip.installed without bin_env uses
# salt-pip on a onedir Salt (its extras directory) and the pip of Salt's own Python
# otherwise (a venv); Salt on the system Python gets the distribution's package, where pip
# may not write (PEP 668). Modules reload after an install, so the states after it in the
# same run find ag_app and ag_swarm. Every step of the deploy includes this: where ag_app
# loads, the SDK imports, and a no-op stands in for pip's package listing (seconds a step).
{%- if "ag_app.stack_status" in salt %}

docker-sdk-importable:
  test.succeed_without_changes:
    - name: the docker SDK imports in this minion's Salt
{%- elif grains["pythonexecutable"].startswith("/usr/bin/") %}

docker-sdk-pkg-installed:
  pkg.installed:
    - name: python3-docker
    - reload_modules: True
{%- else %}

docker-sdk-pip-installed:
  pip.installed:
    - name: docker
    - reload_modules: True
{%- endif %}
