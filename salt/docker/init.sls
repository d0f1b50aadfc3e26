# Docker engine on every node: packages from the source the pillar picks, the daemon.json keys
# the project owns, the service, the docker group.
include:
  - .repo
  - .package
  - .config
  - .service
  - .users
