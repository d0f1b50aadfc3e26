{#- The guide's first step for the web server: the site's TLS certificate and key, present on
    every node labelled webserver (nginx mounts the node's /etc/ssl). Checked, never shown;
    the deploy stops here, naming the node and the file, when one is missing. A renewed
    certificate reaches the nginx task running here: it reloads the files, no restart. #}
{%- from 'ag/map.jinja' import app with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

{%- for what, path in [('certificate', app.tls_certificate), ('key', app.tls_key)] %}
{%- if not path.startswith('/etc/ssl/') %}
ag-tls-{{ what }}:
  test.fail_without_changes:
    - comment: >-
        autograder:app:tls_{{ what }} is {{ path }}: it must be under /etc/ssl/, the directory
        the nginx service mounts from {{ grains['id'] }}
{%- elif not salt['file.file_exists'](path) %}
ag-tls-{{ what }}:
  test.fail_without_changes:
    - comment: >-
        no TLS {{ what }} at {{ path }} on {{ grains['id'] }} (labelled webserver): put the
        site's {{ what }} there, or set autograder:app:tls_{{ what }}
{%- else %}
ag-tls-{{ what }}:
  test.succeed_without_changes:
    - comment: TLS {{ what }} present at {{ path }} on {{ grains['id'] }}
{%- endif %}
{%- endfor %}

ag-tls-loaded:
  ag_app.tls_loaded:
    - name: {{ app.stack_name }}_nginx
    - files: {{ [app.tls_certificate, app.tls_key] | json }}
    - require:
      - sls: docker.sdk
      - test: ag-tls-certificate
      - test: ag-tls-key
