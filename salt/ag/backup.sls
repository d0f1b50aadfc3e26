{#- The site's backups by schedule (autograder:backup:schedule): the minion of the node
    labelled database runs ag_app.backup at those times, with the arguments salt-run ag.backup
    gives it (backup:dir, backup:keep, the stack, the checkout); on every other node, and
    without a schedule, no such job. A label move or a pillar edit reaches it with the
    highstate or ag.deploy's node states. #}
{%- from 'ag/map.jinja' import app, backup, cluster with context %}
{%- set node = cluster.get('nodes', {}).get(grains['id']) or {} %}
{%- if backup.schedule and 'database' in (node.get('labels') or []) %}
ag-backup-scheduled:
  schedule.present:
    - name: ag-backup
    - function: ag_app.backup
    - job_args: {{ [backup.dir, backup.keep, app.stack_name, app.checkout] | json }}
    - cron: {{ backup.schedule | json }}
    - maxrunning: 1
{%- else %}
ag-backup-scheduled:
  schedule.absent:
    - name: ag-backup
{%- endif %}
