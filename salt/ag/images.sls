{#- Build and push, on the NFS server node, the images whose build inputs changed. #}
{%- from 'ag/map.jinja' import app with context %}
ag-images:
  ag_app.images_pushed:
    - name: {{ app.checkout }}
