# Every other cluster node mounts the server's checkout at the same path, now and at boot;
# a mount that is already right is left alone (no remount on every run).
{%- from "nfs/map.jinja" import nfs with context %}
{%- if not nfs.server_address %}

nfs-client-server-unknown:
  test.fail_without_changes:
    - comment: >-
        The NFS server {{ nfs.server }} (autograder:nfs:server, default the cluster manager)
        has no address under autograder:cluster:nodes; add it there.
{%- else %}

nfs-client-pkg-installed:
  pkg.installed:
    - pkgs: {{ nfs.client_pkgs | json }}

nfs-client-checkout-mounted:
  ag_node.nfs_mounted:
    - name: {{ nfs.path }}
    - device: {{ nfs.server_address }}:{{ nfs.path }}
    - options: {{ nfs.mount_options | json }}
    - server_wait: {{ nfs.server_wait }}
    - require:
      - pkg: nfs-client-pkg-installed
{%- endif %}
