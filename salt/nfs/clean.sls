{#- The checkout's NFS share undone: on the server node its export (exportfs re-reads the
    exports; the NFS server keeps running for the admin's other exports), on every other node
    its mount and fstab entry. The checkout itself, its secrets among them, and the NFS
    packages stay. Nothing where autograder:nfs:managed is false: the checkout is then on
    the site's own shared storage, not this project's to unmount. #}
{%- from "nfs/map.jinja" import nfs with context %}
{%- set device = (nfs.server_address or nfs.server) ~ ":" ~ nfs.path %}
{%- if not nfs.managed %}

nfs-clean-not-managed:
  test.succeed_without_changes:
    - name: NFS is not managed on {{ grains["id"] }} (autograder:nfs:managed false)
{%- elif grains["id"] == nfs.server %}

nfs-clean-server-exports-file-absent:
  file.absent:
    - name: {{ nfs.exports_file }}

nfs-clean-server-exportfs-reexport:
  cmd.run:
    - name: exportfs -ra
    - onlyif: command -v exportfs
    - onchanges:
      - file: nfs-clean-server-exports-file-absent
{%- else %}

nfs-clean-client-checkout-unmounted:
  mount.unmounted:
    - name: {{ nfs.path }}
    # only an NFS mount: a node's own checkout there is not ours to unmount
    - onlyif: findmnt -n -t nfs,nfs4 {{ nfs.path }}

nfs-clean-client-fstab-entry-absent:
  mount.fstab_absent:
    - name: {{ device }}
    - fs_file: {{ nfs.path }}
    - require:
      - mount: nfs-clean-client-checkout-unmounted
{%- endif %}
