{#- Build and push, on the NFS server node, the images whose build inputs changed (the build
    args among them: a release that builds postgres takes app:postgres_version as one). #}
{%- from 'ag/map.jinja' import app with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

ag-images:
  ag_app.images_pushed:
    - name: {{ app.checkout }}
    - postgres_version: {{ app.postgres_version | json }}
    - require:
      - sls: docker.sdk
