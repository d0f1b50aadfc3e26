{#- Applied on the node labelled database, between the secrets and the stack: the running
    database takes the generated password before the stack rolls the app onto it. A database
    an install made before this product deployed it (upstream's 'postgres') keeps its own
    password whatever POSTGRES_PASSWORD_FILE says, so it is set there (ag_app.database_password). #}
{%- from 'ag/map.jinja' import app, secrets_dir with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

ag-database-password:
  ag_app.database_password:
    - name: {{ app.stack_name }}_postgres
    - password_file: {{ secrets_dir }}/db_password
    - require:
      - sls: docker.sdk
