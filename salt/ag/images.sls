{#- Build and push, on the NFS server node, the images whose build inputs changed. #}
{%- from 'ag/map.jinja' import app with context %}
# ag_app works through ag_docker, which needs the docker SDK
include:
  - docker.sdk

ag-images:
  ag_app.images_pushed:
    - name: {{ app.checkout }}
    - require:
      - sls: docker.sdk
