{#- New connections to the cluster-only ports (the registries, the swarm's control and data
    ports; NFS on the server node) from any address but the cluster nodes' are dropped in the
    raw table, before Docker's ingress DNAT, in IPv4 and, where the kernel has it, IPv6 (a
    family without node addresses drops them all). The node's own traffic (dockerd's pulls
    from 127.0.0.1:5000) comes in on lo, which passes PREROUTING too: it is let through. One
    script builds the rules and, with --check, tells whether the live rules are those; the
    state runs it when they are not, and where systemd runs, a unit runs it at boot before
    Docker, so a rebooted node never opens those ports. #}
{%- from "firewall/map.jinja" import firewall with context %}
{%- if firewall.managed and firewall.in_cluster %}
{%- set chain = firewall.chain %}
{%- set jumps = [] %}
{%- for proto in ("tcp", "udp") %}
{%-   do jumps.append("PREROUTING ! -i lo -p " ~ proto ~ " -m multiport --dports "
                      ~ firewall[proto ~ "_ports"] | join(",")
                      ~ " -m addrtype --dst-type LOCAL -j " ~ chain) %}
{%- endfor %}

firewall-iptables-pkg-installed:
  pkg.installed:
    - name: iptables

firewall-script-file-managed:
  file.managed:
    - name: {{ firewall.script }}
    - mode: '0755'
    - contents: |
        #!/bin/sh
        # managed by Salt (autograder firewall): the cluster-only ports' rules, built again;
        # with --check, exit 0 when the live rules are these already and change nothing
        set -e
        rules() {  # the chain's rules in family $t, as $t -S prints them
          echo '-N {{ chain }}'
          case $t in
        {%- for family, sources in firewall.sources | dictsort %}
            {{ family }}){% for source in sources %} echo '-A {{ chain }} -s {{ source }} -j RETURN';{% endfor %} ;;
        {%- endfor %}
          esac
          echo '-A {{ chain }} -j DROP'
        }
        jumps() {
        {%- for jump in jumps %}
          echo '{{ jump }}'
        {%- endfor %}
        }
        for t in {{ firewall.families }}; do
          if [ "$1" = --check ]; then
            test "$($t -t raw -S {{ chain }} 2>/dev/null)" = "$(rules)"
            test "$($t -t raw -S PREROUTING | grep -c -e '-j {{ chain }}$')" = {{ jumps | length }}
            jumps | while read -r jump; do $t -t raw -C $jump; done
            continue
          fi
          $t -t raw -N {{ chain }} 2>/dev/null || $t -t raw -F {{ chain }}
          rules | grep -e '^-A' | while read -r rule; do $t -t raw $rule; done
          {{ firewall.unjump }}
          jumps | while read -r jump; do $t -t raw -I $jump; done
        done

firewall-cluster-only-rules-applied:
  ag_node.script_applied:
    - name: {{ firewall.script }}
    - check: --check
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
