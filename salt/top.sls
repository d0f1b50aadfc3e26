# Every minion of the cluster gets the node states and the swarm; the states of each concern
# render nothing on minions that concern does not apply to (see each map.jinja).
base:
  '*':
    # the node concerns (docker, limits, nfs) come before the swarm; merged by the lead
    - swarm
