{#- New connections to the cluster-only ports (the registries; NFS on the server node) from
    any address but the cluster nodes' are dropped in the raw table, before Docker's ingress
    DNAT. The node's own traffic (dockerd's pulls from 127.0.0.1:5000) comes in on lo, which
    passes PREROUTING too: it is let through. One script builds the rules; the state runs it
    when the live rules differ from the pillar's, and where systemd runs, a unit runs it at
    boot before Docker, so a rebooted node never opens those ports. #}
{%- from "firewall/map.jinja" import firewall with context %}
{%- if firewall.managed and firewall.in_cluster %}
{%- set chain = firewall.chain %}
{%- set rules = [] %}
{%- for source in firewall.sources %}
{%-   do rules.append("-A " ~ chain ~ " -s " ~ source ~ "/32 -j RETURN") %}
{%- endfor %}
{%- do rules.append("-A " ~ chain ~ " -j DROP") %}
{%- set jump = "PREROUTING ! -i lo -p tcp -m multiport --dports " ~ firewall.ports | join(",")
               ~ " -m addrtype --dst-type LOCAL -j " ~ chain %}

firewall-iptables-pkg-installed:
  pkg.installed:
    - name: iptables

firewall-script-file-managed:
  file.managed:
    - name: {{ firewall.script }}
    - mode: '0755'
    - contents: |
        #!/bin/sh
        # managed by Salt (autograder firewall): the cluster-only ports' rules, rebuilt
        set -e
        iptables -t raw -N {{ chain }} 2>/dev/null || iptables -t raw -F {{ chain }}
        {%- for rule in rules %}
        iptables -t raw {{ rule }}
        {%- endfor %}
        {{ firewall.unjump }}
        iptables -t raw -I {{ jump }}

firewall-cluster-only-rules-applied:
  cmd.run:
    - name: {{ firewall.script }}
    # iptables -S prints the chain as -N then its rules; exactly one jump to it
    - unless: >-
        test "$(iptables -t raw -S {{ chain }} 2>/dev/null)"
        = "$(printf '%s\n' '-N {{ chain }}' {% for rule in rules %}'{{ rule }}' {% endfor %})"
        && test "$(iptables -t raw -S PREROUTING | grep -c -e '-j {{ chain }}$')" = 1
        && iptables -t raw -C {{ jump }}
    - require:
      - pkg: firewall-iptables-pkg-installed
      - file: firewall-script-file-managed
{%- if firewall.systemd %}

firewall-boot-unit-file-managed:
  file.managed:
    - name: /etc/systemd/system/{{ firewall.unit }}
    - mode: '0644'
    - contents: |
        # managed by Salt (autograder firewall)
        [Unit]
        Description=autograder: cluster-only ports for the cluster's nodes only
        Before=docker.service nfs-server.service
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart={{ firewall.script }}
        [Install]
        WantedBy=multi-user.target

firewall-boot-unit-enabled:
  service.enabled:
    - name: {{ firewall.unit }}
    - require:
      - file: firewall-boot-unit-file-managed
      - file: firewall-script-file-managed
{%- endif %}
{%- endif %}
