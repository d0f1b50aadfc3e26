# nofile for logins (pam_limits) and for the docker/containerd services (systemd drop-ins);
# containers get it from daemon.json default-ulimits (docker.config).
include:
  - .logins
  - .systemd
