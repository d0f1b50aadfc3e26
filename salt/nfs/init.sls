# The autograder checkout shared over NFS: exported by the server node, mounted at the same
# path on every other cluster node. Nothing at all when autograder:nfs:managed is false.
{%- from "nfs/map.jinja" import nfs with context %}
{%- if nfs.managed and nfs.role %}
include:
  - .{{ nfs.role }}
{%- else %}

nfs-not-managed:
  test.succeed_without_changes:
    - name: NFS is not managed on {{ grains["id"] }} (autograder:nfs:managed false, or not a cluster node)
{%- endif %}
