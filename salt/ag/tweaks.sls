{#- The guide's "Other Tweaks" and first-steps settings that are baked into images or read
    from upstream's own files. Each edit rewrites one assignment in place, so it is idempotent
    and re-applies cleanly after a `git pull` restored upstream's line. Worker counts are not
    here: they go into the compose override (ag/stack.sls), upstream's compose stays as is. #}
{%- from 'ag/map.jinja' import app with context %}
{%- set root = app.checkout %}

ag-tweaks-site-domain-env:
  file.replace:
    - name: {{ root }}/autograder-server/_prod.env
    - pattern: '^(ALLOWED_HOSTS|SITE_DOMAIN)=.*$'
    - repl: '\1={{ app.site_domain }}'

{#- the OAuth provider and the e-mail settings the app reads from _prod.env (upstream ships
    the e-mail lines commented out); the secrets themselves come in ag.secrets #}
ag-tweaks-oauth-provider:
{%- if app.oauth.provider in ['google', 'azure'] %}
  file.replace:
    - name: {{ root }}/autograder-server/_prod.env
    - pattern: '^OAUTH2_PROVIDER=.*$'
    - repl: 'OAUTH2_PROVIDER={{ app.oauth.provider }}'
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
    - pattern: '^#?[ \t]*{{ key }}=.*$'
    - repl: '{{ key }}={{ value }}'
{%- endfor %}

ag-tweaks-site-domain-nginx:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - pattern: '^(\s*server_name)\s+[^;]*;'
    - repl: '\1 {{ app.site_domain }};'

ag-tweaks-site-domain-redirect:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - pattern: 'return 301 https://[^$]*\$request_uri;'
    - repl: 'return 301 https://{{ app.site_domain }}$request_uri;'

ag-tweaks-tls-certificate:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - pattern: '^(\s*ssl_certificate)\s+[^;]*;'
    - repl: '\1 {{ app.tls_certificate }};'

ag-tweaks-tls-key:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - pattern: '^(\s*ssl_certificate_key)\s+[^;]*;'
    - repl: '\1 {{ app.tls_key }};'

ag-tweaks-client-max-body-size:
  file.replace:
    - name: {{ root }}/nginx/production/conf.d/default.conf
    - pattern: '^(\s*client_max_body_size)\s+[^;]*;'
    - repl: '\1 {{ app.client_max_body_size }};'

ag-tweaks-sysadmin-contact:
  file.replace:
    - name: {{ root }}/ag-website-vue/src/constants.ts
    - pattern: "^(export const SYSADMIN_CONTACT\\s*=\\s*).*;$"
    - repl: "\\1'{{ app.sysadmin_contact }}';"

ag-tweaks-max-command-timeout:
  file.replace:
    - name: {{ root }}/ag-website-vue/src/constants.ts
    - pattern: '^(export const MAX_COMMAND_TIMEOUT\s*=\s*)\d+;$'
    - repl: '\g<1>{{ app.max_subprocess_timeout }};'

ag-tweaks-max-subprocess-timeout:
  file.replace:
    - name: {{ root }}/autograder-server/autograder/core/constants.py
    - pattern: '^MAX_SUBPROCESS_TIMEOUT\s*=\s*\d+'
    - repl: 'MAX_SUBPROCESS_TIMEOUT = {{ app.max_subprocess_timeout }}'

{#- Secrets are mounted at run time (the override of ag/stack.sls), never built into an
    image; _prod.env (it holds the database password) reaches the services as their env_file.
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
