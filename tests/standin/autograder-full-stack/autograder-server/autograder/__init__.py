"""The autograder server (stand-in)."""
