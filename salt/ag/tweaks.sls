{#- The guide's "Other Tweaks" and first-steps settings that are baked into images or read
    from upstream's own files. Each edit rewrites one assignment in place, so it is idempotent
    and re-applies cleanly after a `git pull` restored upstream's line. No edit leaves a
    backup copy (file.replace's and file.blockreplace's .bak): in a build context it would carry the line as it was,
    an old password included, into an image every node can pull. Worker counts are not
    here: they go into the compose override (ag/stack.sls); the compose file gets only the
    guide's own "UPDATE THIS" (the postgres password, emptied). #}
{%- from 'ag/map.jinja' import app with context %}
{%- set root = app.checkout %}
# the ag_app state works through _utils/ag_compose.py, which needs the docker SDK
include:
  - docker.sdk

{#- _prod.env reaches every service spec as env_file, so it carries no password: upstream's
    AG_DB_PASSWORD=postgres (or a password an earlier deploy wrote) is blanked, an e-mail
    password goes when the site keeps it in a file (ag.secrets); the settings read both from
    the secrets dir (below). First, and never shown, so no diff of a later edit of the file
    shows an old password as context. #}
{%- set env_scrubbed = ['ag-tweaks-env-no-db-password'] %}
ag-tweaks-env-no-db-password:
  file.replace:
    - name: {{ root }}/autograder-server/_prod.env
    - backup: False
    - pattern: '^AG_DB_PASSWORD=.*$'
    - repl: 'AG_DB_PASSWORD='
    - show_changes: False
{%- if app.email.password_file %}
{%-   do env_scrubbed.append('ag-tweaks-env-no-email-password') %}

ag-tweaks-env-no-email-password:
  file.replace:
    - name: {{ root }}/autograder-server/_prod.env
    - backup: False
    - pattern: '^[ \t]*EMAIL_HOST_PASSWORD=.*$'
    - repl: '# EMAIL_HOST_PASSWORD='
    - show_changes: False
{%- endif %}
{%- macro after_env_scrubbed() %}
    - require:
{%-   for id in env_scrubbed %}
      - file: {{ id }}
{%-   endfor %}
{%- endmacro %}

ag-tweaks-site-domain-env:
  file.replace:
    - name: {{ root }}/autograder-server/_prod.env
    - backup: False
    - pattern: '^(ALLOWED_HOSTS|SITE_DOMAIN)=.*$'
    - repl: '\1={{ app.site_domain }}'
{{- after_env_scrubbed() }}

{#- the OAuth provider and the e-mail settings the app reads from _prod.env (upstream ships
    the e-mail lines commented out); the secrets themselves come in ag.secrets #}
ag-tweaks-oauth-provider:
{%- if app.oauth.provider in ['google', 'azure'] %}
  file.replace:
    - name: {{ root }}/autograder-server/_prod.env
    - backup: False
    - pattern: '^OAUTH2_PROVIDER=.*$'
    - repl: 'OAUTH2_PROVIDER={{ app.oauth.provider }}'
{{- after_env_scrubbed() }}
{%- else %}
  test.fail_without_changes:
    - comment: >-
        autograder:app:oauth:provider is {{ app.oauth.provider }}; the app knows google and azure
{%- endif %}
{%- for key, value in [('EMAIL_FROM_ADDR', app.email.from_addr), ('EMAIL_HOST', app.email.host),
                       ('EMAIL_HOST_USER', app.email.user), ('EMAIL_PORT', app.email.port)]
      if value is not none %}

ag-tweaks-{{ key | lower | replace('_', '-') }}:
  file.replace:
    - name: {{ root }}/autograder-server/_prod.env
    - backup: False
    - pattern: '^#?[ \t]*{{ key }}=.*$'
    - repl: '{{ key }}={{ value }}'
{{- after_env_scrubbed() }}
{%- endfor %}

{#- the guide's "UPDATE THIS" POSTGRES_PASSWORD in docker-compose.yml, made empty: the postgres
    service reads the password file instead (the override of ag/stack.sls; an override cannot
    empty it, docker's merge skips empty values), so the service spec holds no password. Never
    shown: a site may have put its password there, as the guide says. #}
ag-tweaks-compose-postgres-password-empty:
  file.replace:
    - name: {{ root }}/docker-compose.yml
    - backup: False
    - pattern: '^(\s*POSTGRES_PASSWORD:).*$'
    - repl: "\\1 ''"
    - show_changes: False

{#- a key set twice in one mapping (upstream's postgres and redis `image:`): today's docker
    refuses the file, older docker took the later value; the earlier line becomes a comment #}
ag-tweaks-compose-keys-once:
  ag_app.compose_keys_once:
    - name: {{ root }}/docker-compose.yml
    - require:
      - sls: docker.sdk

ag-tweaks-site-domain-nginx:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - backup: False
    - pattern: '^(\s*server_name)\s+[^;]*;'
    - repl: '\1 {{ app.site_domain }};'

ag-tweaks-site-domain-redirect:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - backup: False
    - pattern: 'return 301 https://[^$]*\$request_uri;'
    - repl: 'return 301 https://{{ app.site_domain }}$request_uri;'

ag-tweaks-tls-certificate:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - backup: False
    - pattern: '^(\s*ssl_certificate)\s+[^;]*;'
    - repl: '\1 {{ app.tls_certificate }};'

ag-tweaks-tls-key:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - backup: False
    - pattern: '^(\s*ssl_certificate_key)\s+[^;]*;'
    - repl: '\1 {{ app.tls_key }};'

ag-tweaks-client-max-body-size:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - backup: False
    - pattern: '^(\s*client_max_body_size)\s+[^;]*;'
    - repl: '\1 {{ app.client_max_body_size }};'

ag-tweaks-sysadmin-contact:
  file.replace:
    - name: {{ root }}/ag-website-vue/src/constants.ts
    - backup: False
    - pattern: "^(export const SYSADMIN_CONTACT\\s*=\\s*).*;$"
    - repl: "\\1'{{ app.sysadmin_contact }}';"

ag-tweaks-max-command-timeout:
  file.replace:
    - name: {{ root }}/ag-website-vue/src/constants.ts
    - backup: False
    - pattern: '^(export const MAX_COMMAND_TIMEOUT\s*=\s*)\d+;$'
    - repl: '\g<1>{{ app.max_subprocess_timeout }};'

ag-tweaks-max-subprocess-timeout:
  file.replace:
    - name: {{ root }}/autograder-server/autograder/core/constants.py
    - backup: False
    - pattern: '^MAX_SUBPROCESS_TIMEOUT\s*=\s*\d+'
    - repl: 'MAX_SUBPROCESS_TIMEOUT = {{ app.max_subprocess_timeout }}'

{#- The passwords the settings read from the environment (upstream: AG_DB_PASSWORD and
    EMAIL_HOST_PASSWORD in _prod.env, which `docker stack deploy` inlines into every service
    spec) are read from the secrets dir the services are given at run time instead (ag.secrets
    writes them there). A block after upstream's settings, so it survives an upstream change
    of them and is appended again when a `git pull` restored the file; it holds no secret, so
    it may be built into the images. #}
ag-tweaks-settings-secrets-from-files:
  file.blockreplace:
    - name: {{ root }}/autograder-server/autograder/settings/production.py
    - backup: False
    - marker_start: '# BEGIN ag.deploy: passwords from the secrets dir (salt ag.tweaks)'
    - marker_end: '# END ag.deploy: passwords from the secrets dir'
    - append_if_not_found: True
    - content: |
        def _ag_secret(name):
            import os
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'secrets', name)
            if os.path.exists(path):
                with open(path) as f:
                    return f.read().rstrip('\n')
            return None


        if _ag_secret('db_password') is not None:
            DATABASES['default']['PASSWORD'] = _ag_secret('db_password')
        if _ag_secret('email_host_password') is not None:
            EMAIL_HOST_PASSWORD = _ag_secret('email_host_password')

{#- Secrets are given at run time (swarm secrets, the override of ag/stack.sls), never
    built into an image; nor is _prod.env (the services get it as their env_file).
    Python caches anywhere in the tree (upstream ignores them at the top only) would change the build
    inputs whenever something runs the code in the checkout, and rebuild images for nothing. #}
ag-tweaks-dockerignore-secrets:
  file.append:
    - name: {{ root }}/autograder-server/.dockerignore
    - text:
      - autograder/settings/secrets
      - autograder/settings/oauth2_secrets.json
      - generate_secrets_venv
      - _prod.env
      - '**/__pycache__'

{#- the backup copies earlier versions of these edits left (file.replace's default), the
    old lines in them #}
{%- for edited in ['autograder-server/_prod.env', 'docker-compose.yml',
                   'nginx/production/conf.d/default.conf', 'ag-website-vue/src/constants.ts',
                   'autograder-server/autograder/core/constants.py',
                   'autograder-server/autograder/settings/production.py'] %}

ag-tweaks-no-backup-of-{{ edited | replace('/', '-') }}:
  file.absent:
    - name: {{ root }}/{{ edited }}.bak
{%- endfor %}
