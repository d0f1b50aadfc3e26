# An example 3-NUC cluster; copy and edit. Every key is documented in pillar.example.
autograder:
  cluster:
    manager: nuc1
    nodes:
      nuc1:
        address: 198.18.0.11
        labels: [registry, database, cache, rabbitmq_broker, custom_image_registry,
                 webserver, django_app, small_tasks]
      nuc2:
        address: 198.18.0.12
        labels: [grader, fast_grader, image_builder]
      nuc3:
        address: 198.18.0.13
        labels: [deferred_grader, rerun_grader]
  docker:
    source: docker-ce
  app:
    checkout: /srv/autograder-full-stack
