# LimitNOFILE for the container services where systemd runs them; a unit whose drop-in
# changed is restarted if it runs (try-restart), so the limit holds without a reboot.
{%- from "limits/map.jinja" import limits with context %}
{%- if limits.systemd %}
{%-   for unit in limits.systemd_units %}

limits-systemd-{{ unit }}-dropin-file-managed:
  file.managed:
    - name: /etc/systemd/system/{{ unit }}.service.d/{{ limits.dropin_name }}
    - makedirs: True
    - mode: '0644'
    - contents: |
        # managed by Salt (autograder limits.systemd)
        [Service]
        LimitNOFILE={{ limits.nofile }}

limits-systemd-{{ unit }}-try-restart:
  cmd.run:
    - name: systemctl try-restart {{ unit }}.service
    - onlyif: systemctl cat {{ unit }}.service
    - onchanges:
      - file: limits-systemd-{{ unit }}-dropin-file-managed
    - require:
      - cmd: limits-systemd-daemon-reload
{%-   endfor %}

limits-systemd-daemon-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
{%-   for unit in limits.systemd_units %}
      - file: limits-systemd-{{ unit }}-dropin-file-managed
{%-   endfor %}
{%- endif %}
