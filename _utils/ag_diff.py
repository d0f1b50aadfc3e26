"""The one diff of what a state or module changes, or would in test mode: every key whose
value differs, as {key: {"old": ..., "new": ...}}, the shape Salt's state output shows. Plain
Python without Salt, reached as __utils__["ag_diff.changes"]."""


def changes(current: dict, wanted: dict) -> dict:
    """The keys of `wanted` whose value in `current` differs (None when absent); {} when none."""
    return {key: {"old": current.get(key), "new": value}
            for key, value in wanted.items() if current.get(key) != value}


def described(diff: dict) -> str:
    """`diff` (from changes) for a sentence: "key is old, pillar wants new; ..."."""
    return "; ".join(f"{key} is {d['old']}, pillar wants {d['new']}" for key, d in diff.items())
