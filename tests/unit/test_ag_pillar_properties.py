"""Property tests of the pillar validation over the whole schema (_utils/ag_schema.py): pillars
generated from it pass; one malformed value anywhere (a wrong type, out of range, a list for a
string, a mapping in a label list, None, non-ASCII, bools for numbers...) gives an error that
names its key; nothing makes validate raise. The malformed values come from each key's
declared kind, not from the validation's code.

The run prints how many malformed pillars it tried; `--hypothesis-show-statistics` shows how
many pillars each property generated."""

import collections
import copy
import ipaddress
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.extensions import load

ag_cluster = load("_utils/ag_cluster.py", "ag_cluster")
schema = ag_cluster.schema


def examples(n):
    """`n` examples, no example database in the repository, no deadline on a slow machine."""
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# non-ASCII, control characters and whitespace
ODD_TEXT = st.text(alphabet="äéü€字\n\t\x00 ", max_size=5)
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63)
           | st.floats() | st.text() | ODD_TEXT)
JUNK = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3),
                    max_leaves=6)


# --- valid values, from each key's declaration ---------------------------------------------

SEGMENT = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,8}", fullmatch=True)
RELATIVE = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)
ADDRESSES = (st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
             | st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)).map(str)


def _network(pair) -> str:
    address, prefix = pair
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


# printable characters, non-ASCII included (a key's pattern may narrow them)
PRINTABLE = st.characters(categories=("L", "M", "N", "P", "S"), include_characters=" ")


def _text(key):
    if key.pattern is None:
        return st.text(PRINTABLE, min_size=1, max_size=20).filter(str.strip)
    return st.from_regex(key.pattern, fullmatch=True, alphabet=PRINTABLE)


def _path(key):
    head = "/srv/" if key.own_dir else key.under
    return RELATIVE.map(lambda rest: head + rest)


def _section(key, full):
    keys = {name: valid(sub, full) for name, sub in key.keys.items()}
    return st.fixed_dictionaries(keys) if full else st.fixed_dictionaries({}, optional=keys)


VALID = {  # kind → strategy of its valid values (subclasses first); `full`: every key there
    schema.Bool: lambda key, full: st.booleans(),
    schema.Int: lambda key, full: st.integers(key.low, key.high),
    schema.Domain: lambda key, full: st.from_regex(
        rf"({schema.DOMAIN_LABEL}\.)*{schema.DOMAIN_LABEL}", fullmatch=True).filter(lambda d: len(d) <= 253),
    schema.Text: lambda key, full: _text(key),
    schema.Version: lambda key, full: st.integers(0, 9999) | st.from_regex(
        r"[0-9]{1,4}(\.[0-9]{1,4})?", fullmatch=True),
    schema.Choice: lambda key, full: st.sampled_from(key.choices),
    schema.Address: lambda key, full: ADDRESSES,
    schema.Network: lambda key, full: st.tuples(ADDRESSES, st.integers(0, 32)).map(_network),
    schema.Path: lambda key, full: _path(key),
    schema.RelativePath: lambda key, full: RELATIVE,
    schema.List: lambda key, full: st.lists(valid(key.item, full), min_size=int(full), max_size=4),
    schema.Section: _section,
    schema.Mapping: lambda key, full: st.dictionaries(st.text(min_size=1, max_size=8), SCALARS,
                                                      max_size=3),
}


def valid(key, full=False):
    strategy = next(make(key, full) for kind, make in VALID.items() if isinstance(key, kind))
    return strategy | st.none() if key.null_ok and not full else strategy


def _optional(draw, full, **keys) -> dict:
    return draw(st.fixed_dictionaries(keys) if full else st.fixed_dictionaries({}, optional=keys))


@st.composite
def clusters(draw, full):
    """A cluster the rules across keys accept: each service label on an active node (the
    single-node ones on exactly one), one grader flavour per node, addresses unique."""
    ids = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True),
                        min_size=1, max_size=5, unique=True))
    manager = draw(st.sampled_from(ids))
    addresses = draw(st.lists(ADDRESSES, min_size=len(ids), max_size=len(ids), unique=True))
    drained = {i for i in ids if i != manager and draw(st.booleans())}
    active = [i for i in ids if i not in drained]
    labels = {i: [] for i in ids}
    for label in ag_cluster.SERVICE_LABELS:
        most = 1 if label in ag_cluster.SINGLE_NODE_LABELS else len(active)
        for i in draw(st.lists(st.sampled_from(active), min_size=1, max_size=most, unique=True)):
            labels[i].append(label)
    others = [label for label in schema.LABELS if label not in ag_cluster.SERVICE_LABELS
              and label not in schema.ONE_PER_NODE_LABELS]
    nodes = {}
    for i, address in zip(ids, addresses, strict=True):
        mine = (labels[i] + draw(st.lists(st.sampled_from(others), unique=True))
                + draw(st.lists(st.sampled_from(schema.ONE_PER_NODE_LABELS), max_size=1)))
        nodes[i] = {"address": address, "labels": draw(st.permutations(mine)),
                    **_optional(draw, full, role=st.sampled_from(schema.ROLES),
                                availability=st.just("drain" if i in drained else "active"))}
        if i in drained:
            nodes[i]["availability"] = "drain"
    moves = valid(schema.CLUSTER.keys["allow_label_moves"], full)
    return {"manager": manager, "nodes": nodes, **_optional(draw, full, allow_label_moves=moves)}


@st.composite
def pillars(draw, full=False):
    """Valid pillars; `full`: with every key of the schema."""
    pillar = {"cluster": draw(clusters(full))}
    for name, key in schema.AUTOGRADER.keys.items():
        if name != "cluster" and (full or draw(st.booleans())):
            pillar[name] = draw(valid(key, full))
    nfs = pillar.get("nfs")
    if isinstance(nfs, dict) and nfs.get("server") is not None:
        nfs["server"] = draw(st.sampled_from(sorted(pillar["cluster"]["nodes"])))
    return pillar


# --- malformed values, from each key's declared kind ----------------------------------------

# a value of each type, oddities included (huge numbers, non-ASCII, control characters)
OF_TYPE = {
    bool: st.booleans(),
    int: st.integers() | st.integers(min_value=2**63) | st.integers(max_value=-(2**63)),
    float: st.floats(),
    str: st.text(max_size=10) | ODD_TEXT,
    list: st.lists(SCALARS, max_size=3),
    dict: st.dictionaries(st.text(max_size=5) | st.integers(), SCALARS, max_size=3),
}
RIGHT_TYPES = {  # kind → the types its values have (subclasses first)
    schema.Bool: (bool,), schema.Int: (int,), schema.Version: (int, float, str),
    schema.List: (list,), schema.Section: (dict,), schema.Mapping: (dict,),
    schema.Key: (str,),  # every other kind holds a string
}


def wrong_type(key):
    right = next(types for kind, types in RIGHT_TYPES.items() if isinstance(key, kind))
    wrong = [strategy for kind, strategy in OF_TYPE.items() if kind not in right]
    return st.one_of(*wrong, *([] if key.null_ok else [st.none()]))


BAD_STRINGS = ["", "two\nlines", "nul\x00", "tab\there"]


def _bad_strings(key):
    """Strings the key's kind refuses whatever its pattern."""
    if isinstance(key, schema.Choice):
        return st.text().filter(lambda s: s not in key.choices)
    if isinstance(key, schema.Address):
        return st.sampled_from(BAD_STRINGS + ["nuc2.lan", "300.1.1.1", "198.18.0.11/24", "ä"])
    if isinstance(key, schema.Network):
        return st.sampled_from(BAD_STRINGS + ["10.30.0/24", "198.19.64.1/18", "198.18.0.0/33"])
    if isinstance(key, schema.Path):
        return (st.sampled_from(BAD_STRINGS + [key.under + "a/../b", key.under + "a//b"])
                | st.text().filter(lambda s: not s.startswith(key.under)))
    if isinstance(key, schema.RelativePath):
        return st.sampled_from(BAD_STRINGS + ["/abs.yml", "../up.yml", "a/../../b"])
    if isinstance(key, schema.Version):
        return st.sampled_from(BAD_STRINGS + ["latest", "14.x", "v14"])
    if isinstance(key, schema.Text) and (key.pattern or isinstance(key, schema.Domain)):
        return st.sampled_from(BAD_STRINGS + ["has a space", "ü ö"])
    return st.sampled_from(BAD_STRINGS)


def malformed(key, current):
    """Values `key` refuses, whatever else the pillar holds (`current`: its value now)."""
    if isinstance(key, schema.Int):
        return (wrong_type(key) | st.integers(max_value=key.low - 1)
                | st.integers(min_value=key.high + 1))
    if isinstance(key, schema.List):
        return wrong_type(key) | malformed(key.item, None).map(lambda item: [item])
    if isinstance(key, schema.Section):
        known = current if isinstance(current, dict) else {}
        return wrong_type(key) | st.just({**known, "no_such_key": 1})
    if isinstance(key, schema.Mapping):
        empty = [st.just({})] if key.required else []
        return st.one_of(wrong_type(key), st.just({7: {}}), *empty)
    if isinstance(key, schema.Bool):
        return wrong_type(key)
    return wrong_type(key) | _bad_strings(key)


def slots(key, value, where, steps):
    """(where, steps, key, value) of every key of the pillar, present or not: each place one
    malformed value can go (`steps`: the keys and indexes that reach it)."""
    yield where, steps, key, value
    if isinstance(key, schema.Section) and isinstance(value, dict):
        for name, sub in key.keys.items():
            yield from slots(sub, value.get(name), f"{where}:{name}", steps + [name])
    elif isinstance(key, schema.List) and isinstance(value, list):
        for i, item in enumerate(value):
            yield from slots(key.item, item, f"{where}[{i}]", steps + [i])
    elif isinstance(key, schema.Mapping) and key.values and isinstance(value, dict):
        for name, entry in value.items():
            yield from slots(key.values, entry, f"{where}:{name}", steps + [name])


def put(pillar, steps, value=None, delete=False):
    """A copy of `pillar` with `value` at `steps`, or without that key (`delete`)."""
    data = copy.deepcopy(pillar)
    parent = data
    for step in steps[:-1]:
        parent = parent[step]
    if delete:
        del parent[steps[-1]]
    else:
        parent[steps[-1]] = value
    return data


def names(where, errors) -> bool:
    """Some error names the key `where` itself (not only a longer key it begins)."""
    return any(re.search(re.escape(where) + r"(?=[\s:\[)]|$)", e) for e in errors)


# malformed pillars validated, by the kind of their malformed key (reported at the end)
TRIED = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def report_tried(request):
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if TRIED and capture:
        with capture.global_and_fixture_disabled():
            print(f"\nmalformed pillars tried: {TRIED.total()} ("
                  + ", ".join(f"{kind} {n}" for kind, n in TRIED.most_common()) + ")")


@examples(60)
@given(pillars())
def test_a_valid_pillar_passes(pillar):
    assert ag_cluster.validate(pillar) == []


def _refused(pillar, where, errors):
    TRIED[pillar] += 1
    assert isinstance(errors, list) and all(isinstance(e, str) for e in errors)
    assert names(where, errors), errors


@examples(25)  # each tries every key of the schema, 200 malformed pillars or more
@given(pillars(full=True), st.data())
def test_each_key_malformed_or_missing_is_named(pillar, data):
    """Every key of a full pillar in turn: a malformed value there (and, for a required key,
    none) gives an error that names the key."""
    for where, steps, key, current in list(slots(schema.AUTOGRADER, pillar, "autograder", []))[1:]:
        value = data.draw(malformed(key, current), label=where)
        _refused(type(key).__name__, where, ag_cluster.validate(put(pillar, steps, value)))
        if key.required:
            errors = ag_cluster.validate(put(pillar, steps, delete=True))
            _refused("missing", where, errors)
            assert any("is missing" in e or "is empty" in e for e in errors), errors


def key_names(key):
    """Every key name of the schema under `key`."""
    for name, sub in getattr(key, "keys", {}).items():
        yield name
        yield from key_names(sub)
    for child in (getattr(key, "item", None), getattr(key, "values", None)):
        if child is not None:
            yield from key_names(child)


SCHEMA_SHAPED = st.recursive(JUNK, lambda inner: st.dictionaries(
    st.sampled_from(sorted(set(key_names(schema.AUTOGRADER)))) | st.text(max_size=4), inner,
    max_size=6), max_leaves=30)


@examples(150)
@given(JUNK | SCHEMA_SHAPED | st.fixed_dictionaries(
    {}, optional={name: SCHEMA_SHAPED for name in schema.AUTOGRADER.keys}))
def test_validate_never_raises(pillar):
    errors = ag_cluster.validate(pillar, known_minions=["nuc1"], current_holders={"database": ["x"]})
    assert isinstance(errors, list) and all(isinstance(e, str) for e in errors)
