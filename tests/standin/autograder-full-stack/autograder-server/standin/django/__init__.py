"""Stand-in of the parts of Django a deployment exercises (see ../README.md)."""
