{#- The app's secrets, made once on the NFS server node by one state: upstream's
    generate_secrets.py, run in the django image ag.images built (never again: a new GPG key
    would invalidate every receipt sent), and the database password (the upstream default
    'postgres' never survives a deploy). Nothing here prints them; the files stay in the
    secrets dir of the checkout, are kept out of every image (.dockerignore, ag.tweaks) and
    reach the services at run time as swarm secrets (the override of ag/stack.sls): never
    through the environment, which every `docker inspect` shows. #}
{%- from 'ag/map.jinja' import app, server, secrets_dir as secrets with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

ag-secrets-generated:
  ag_app.secrets_generated:
    - name: {{ app.checkout }}
    - require:
      - sls: docker.sdk

ag-secrets-private:
  file.directory:
    - name: {{ secrets }}
    - mode: '0700'
    - require:
      - ag_app: ag-secrets-generated

{#- Secrets the site keeps in files on this node (never in pillar): the OAuth client secrets,
    copied where the app reads them; the e-mail password, into the secrets dir (the settings
    read it there, ag.tweaks; _prod.env carries none). #}
{%- for what, path in [('oauth secrets_file', app.oauth.secrets_file),
                       ('email password_file', app.email.password_file)] if path %}
{%-   if not salt['file.file_exists'](path) %}
ag-secrets-{{ what.split()[0] }}-missing:
  test.fail_without_changes:
    - comment: >-
        autograder:app:{{ what.replace(' ', ':') }} names {{ path }}, which is not on
        {{ grains['id'] }} (the NFS server node): put the file there
{%-   endif %}
{%- endfor %}
{%- if app.oauth.secrets_file %}

ag-secrets-oauth:
  file.managed:
    - name: {{ server }}/autograder/settings/oauth2_secrets.json
    - source: {{ app.oauth.secrets_file }}
    - mode: '0600'
    - show_changes: False
{%- endif %}
{%- if app.email.password_file %}

ag-secrets-email-password:
  file.managed:
    - name: {{ secrets }}/email_host_password
    - source: {{ app.email.password_file }}
    - mode: '0600'
    - show_changes: False
    - require:
      - file: ag-secrets-private
{%- endif %}

{#- the guide's first steps also make the media root the services mount #}
ag-media-root:
  file.directory:
    - name: {{ server }}/media_root
