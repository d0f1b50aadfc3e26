# Docker engine on every node: packages from the source the pillar picks, the daemon.json keys
# the project owns, the service, the docker group; the docker SDK in Salt's Python.
include:
  - .repo
  - .package
  - .config
  - .service
  - .users
  - .sdk
