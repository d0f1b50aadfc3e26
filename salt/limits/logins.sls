# nofile soft and hard for every login, in limits.d (limits.conf stays the admin's).
{%- from "limits/map.jinja" import limits with context %}

limits-logins-nofile-file-managed:
  file.managed:
    - name: {{ limits.conf_file }}
    - mode: '0644'
    - contents: |
        # managed by Salt (autograder limits.logins): open files per process
        *     soft  nofile  {{ limits.nofile }}
        *     hard  nofile  {{ limits.nofile }}
        root  soft  nofile  {{ limits.nofile }}
        root  hard  nofile  {{ limits.nofile }}
