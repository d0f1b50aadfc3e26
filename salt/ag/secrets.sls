{#- The app's secrets, made once on the NFS server node by upstream's generate_secrets.py
    (never again: a new GPG key would invalidate every receipt sent). It prints nothing; the
    files stay in the checkout, are kept out of every image (.dockerignore, ag.tweaks) and
    mounted read-only at run time (the override of ag/stack.sls). #}
{%- from 'ag/map.jinja' import app with context %}
{%- set secrets = app.checkout ~ '/autograder-server/autograder/settings/secrets' %}
ag-secrets-generated:
  cmd.run:
    - name: python3 generate_secrets.py
    - cwd: {{ app.checkout }}/autograder-server
    - creates:
      - {{ secrets }}/secret_key
      - {{ secrets }}/gpg_key_password
    - output_loglevel: quiet
    - hide_output: True

ag-secrets-private:
  file.directory:
    - name: {{ secrets }}
    - mode: '0700'
    - require:
      - cmd: ag-secrets-generated

{#- the guide's first steps also make the media root the services mount #}
ag-media-root:
  file.directory:
    - name: {{ app.checkout }}/autograder-server/media_root
