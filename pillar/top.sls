# Example pillar top file: every cluster minion gets the one cluster description.
base:
  '*':
    - autograder
