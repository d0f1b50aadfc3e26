{#- The autograder-full-stack checkout on the NFS server node: cloned from autograder:app:git_url
    at its revision with submodules, or already there. Moving to another revision (an
    upgrade) first resets upstream's files that ag.tweaks edited, which then edits them again
    in the new release: git updates no checkout with local edits. The move need not be a
    fast-forward: release tags need not descend from each other (a fix released from a
    branch; the test bed's 2021.05.v4 and 2022.01.v1 copies), and the checkout takes the
    revision as upstream has it; at the revision already, the tweaks' edits stay
    (force_reset: remote-changes, where True would reset them on every run). #}
{%- from 'ag/map.jinja' import app with context %}
{%- if app.git_url %}
ag-checkout-git-installed:
  pkg.installed:
    - name: git

ag-checkout-pristine:
  ag_app.checkout_pristine:
    - name: {{ app.checkout }}
    - revision: {{ app.revision }}
    - require:
      - pkg: ag-checkout-git-installed

ag-checkout:
  git.latest:
    - name: {{ app.git_url }}
    - target: {{ app.checkout }}
    - rev: {{ app.revision }}
    - submodules: True
    - force_reset: remote-changes
    - require:
      - ag_app: ag-checkout-pristine
{%- elif not salt['file.file_exists'](app.checkout ~ '/docker-compose.yml') %}
ag-checkout:
  test.fail_without_changes:
    - comment: >-
        no autograder-full-stack checkout at {{ app.checkout }} on {{ grains['id'] }}
        (no {{ app.checkout }}/docker-compose.yml): clone it there, or set
        autograder:app:git_url (and revision) so the deploy clones it
{%- else %}
ag-checkout:
  test.succeed_without_changes:
    - comment: checkout present at {{ app.checkout }} on {{ grains['id'] }}
{%- endif %}
