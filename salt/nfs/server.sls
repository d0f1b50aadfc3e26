# The NFS server exports the checkout to the other cluster nodes only; exportfs -ra re-reads
# the exports when they changed, the server itself is never restarted for it.
{%- from "nfs/map.jinja" import nfs with context %}
{%- if not nfs.server_address %}

nfs-server-unknown:
  test.fail_without_changes:
    - comment: >-
        The NFS server {{ nfs.server }} (autograder:nfs:server, default the cluster manager)
        has no address under autograder:cluster:nodes; add it there.
{%- else %}

nfs-server-pkg-installed:
  pkg.installed:
    - pkgs: {{ nfs.server_pkgs | json }}

nfs-server-checkout-directory:
  file.directory:
    - name: {{ nfs.path }}
    - makedirs: True

nfs-server-exports-file-managed:
  file.managed:
    - name: {{ nfs.exports_file }}
    - makedirs: True
    - mode: '0644'
    - contents: |
        # managed by Salt (autograder nfs.server): the checkout, to the cluster nodes only
        {{ nfs.path }}{% for address in nfs.client_addresses %} {{ address }}({{ nfs.export_options | join(",") }}){% endfor %}
    - require:
      - pkg: nfs-server-pkg-installed

nfs-server-service-running:
  service.running:
    - name: {{ nfs.server_service }}
    - enable: True
    - require:
      - pkg: nfs-server-pkg-installed

nfs-server-exportfs-reexport:
  cmd.run:
    - name: exportfs -ra
    - onchanges:
      - file: nfs-server-exports-file-managed
    - require:
      - file: nfs-server-checkout-directory
      - service: nfs-server-service-running
{%- endif %}
