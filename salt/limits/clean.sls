{#- The open-file limits this project set, undone: the logins' limits.d file and, where
    systemd runs, the docker/containerd drop-ins (systemd re-reads its units; the clean
    restarts no service, so they keep their limit until their next restart). daemon.json's
    default-ulimits stay with the rest of Docker's configuration. #}
{%- from "limits/map.jinja" import limits with context %}

limits-clean-logins-nofile-file-absent:
  file.absent:
    - name: {{ limits.conf_file }}
{%- if limits.systemd %}
{%-   for unit in limits.systemd_units %}

limits-clean-systemd-{{ unit }}-dropin-file-absent:
  file.absent:
    - name: /etc/systemd/system/{{ unit }}.service.d/{{ limits.dropin_name }}
{%-   endfor %}

limits-clean-systemd-daemon-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
{%-   for unit in limits.systemd_units %}
      - file: limits-clean-systemd-{{ unit }}-dropin-file-absent
{%-   endfor %}
{%- endif %}
