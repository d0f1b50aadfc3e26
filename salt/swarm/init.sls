# The cluster's swarm (deployment guide: "Initialize the Swarm", "Label the Nodes"): the
# manager initializes it, every other node of autograder:cluster joins, the manager creates
# the overlay network and labels every node from the pillar.
include:
  - swarm.initialized
  - swarm.joined
  - swarm.network
  - swarm.labels
