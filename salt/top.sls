# Every minion gets the node states, then the swarm. Each concern renders nothing (or a note)
# where it does not apply: the swarm and NFS only on nodes of autograder:cluster.
base:
  '*':
    - docker
    - limits
    - nfs
    - firewall
    - swarm
