{#- The cluster-only ports' rules undone: where systemd runs, the boot unit stopped, disabled
    and deleted; the jumps from PREROUTING and the chain (raw table, IPv4 and IPv6) deleted; the script that
    built them deleted. Whatever autograder:firewall:managed says now, and on a node no longer
    in the cluster too: what an earlier run made goes. iptables itself stays. #}
{%- from "firewall/map.jinja" import firewall with context %}
{%- set chain = firewall.chain %}
{%- set unit_file = "/etc/systemd/system/" ~ firewall.unit %}
{%- if firewall.systemd %}

firewall-clean-boot-unit-dead:
  service.dead:
    - name: {{ firewall.unit }}
    - enable: False
    - onlyif: test -e {{ unit_file }}

firewall-clean-boot-unit-file-absent:
  file.absent:
    - name: {{ unit_file }}
    - require:
      - service: firewall-clean-boot-unit-dead

firewall-clean-systemd-daemon-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: firewall-clean-boot-unit-file-absent
{%- endif %}

firewall-clean-cluster-only-rules-absent:
  cmd.run:
    - name: |
        for t in {{ firewall.families }}; do
          {{ firewall.unjump }}
          if $t -t raw -S {{ chain }} >/dev/null 2>&1; then
            $t -t raw -F {{ chain }}
            $t -t raw -X {{ chain }}
          fi
        done
    # the chain, or a jump to it, is still there in a family (one line: a folded line
    # indented further would keep its line break, and the shell refuses a line starting with ||)
    - onlyif:
      - for t in {{ firewall.families }}; do $t -t raw -S {{ chain }} >/dev/null 2>&1 || $t -t raw -S PREROUTING | grep -q -e '-j {{ chain }}$' && exit 0; done; exit 1
{%- if firewall.systemd %}
    # not built again at boot first
    - require:
      - file: firewall-clean-boot-unit-file-absent
{%- endif %}

firewall-clean-script-file-absent:
  file.absent:
    - name: {{ firewall.script }}
    - require:
      - cmd: firewall-clean-cluster-only-rules-absent
