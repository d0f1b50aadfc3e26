{#- Build and push, on the NFS server node, the images whose build inputs changed. #}
{%- from 'ag/map.jinja' import app with context %}
# the ag_app states work through the ag_app execution module, which needs the docker SDK
include:
  - docker.sdk

ag-images:
  ag_app.images_pushed:
    - name: {{ app.checkout }}
    - require:
      - sls: docker.sdk
