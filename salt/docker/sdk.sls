# The docker Python SDK where this minion's Salt imports it: the ag_swarm and ag_app execution
# modules, and so their states, talk to Docker through it. pip.installed without bin_env uses
# salt-pip on a onedir Salt (its extras directory) and the pip of Salt's own Python
# otherwise (a venv); Salt on the system Python gets the distribution's package, where pip
# may not write (PEP 668). Already importable: no change. Modules reload after an install,
# so the states after it in the same run find ag_swarm and ag_app.
{%- if grains["pythonexecutable"].startswith("/usr/bin/") %}

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
