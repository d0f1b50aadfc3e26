"""The Salt mine entries of the swarm: each minion's swarm node (ag_swarm_node) and, while a
node waits to join, the manager's join token of its role (ag_swarm_join_token_worker /
_manager) readable only by the minions waiting with that role. Plain Python, reached as
``__utils__["ag_mine.…"]`` by the ag_swarm execution module, which hands in its ``__opts__``
and ``mine.get``.

The join token travels only between the manager's engine, the master's mine and the joining
node's engine: it is sent to the master through the request channel (not the event bus,
where it would be logged), and ``join_token`` hands it to ``ag_swarm.swarm_join`` alone; no
execution function returns or logs it.
"""

import salt.channel.client
import salt.utils.mine

NODE = "ag_swarm_node"
JOIN_TOKEN = "ag_swarm_join_token"  # + _worker / _manager
ROLES = ("worker", "manager")


def _request(opts: dict, load: dict) -> bool:
    """A mine request of this minion to the master, synchronous: straight through the request
    channel, not the event bus, so nothing on the way logs the data."""
    with salt.channel.client.ReqChannel.factory(opts) as channel:
        return bool(channel.send(dict(load, id=opts["id"])))


def store(opts: dict, name: str, value, allow_minions=None) -> bool:
    """Store `value` as this minion's mine entry `name`; with `allow_minions`, only those
    minions may read it (the mine's allow_tgt ACL). Whether the master stored it."""
    if allow_minions is not None:
        value = salt.utils.mine.wrap_acl_structure(value, allow_tgt=list(allow_minions),
                                                   allow_tgt_type="list")
    return _request(opts, {"cmd": "_mine", "data": {name: value}, "clear": False})


def publish_node(opts: dict, info: dict) -> bool:
    """Store `info` (this minion's swarm_info) as its NODE entry, readable by every minion."""
    return store(opts, NODE, info)


def published_nodes(mine_get, minions=None) -> dict:
    """{minion: swarm_info} of what the minions in `minions` (default: every minion of the
    master, also those no longer in the pillar) stored as their NODE entry."""
    if minions is None:
        published = mine_get("*", NODE)
    else:
        published = mine_get(list(minions), NODE, tgt_type="list")
    return {m: info for m, info in published.items()
            if (minions is None or m in minions) and isinstance(info, dict)}


def minions_by_node_id(published: dict, pillar_nodes, cluster_id: str, swarm_nodes) -> dict:
    """Swarm node ID → minion id, from what the minions `published` about themselves (also
    those no longer in the pillar: that is how a former node is known), for the nodes of
    `swarm_nodes` in swarm `cluster_id`. A minion of `pillar_nodes` wins over a stale entry
    of another minion id claiming the same node."""
    pillar_last = sorted(published, key=lambda minion: minion in pillar_nodes)
    return {
        published[minion]["node_id"]: minion
        for minion in pillar_last
        if published[minion].get("cluster_id") == cluster_id
        and published[minion].get("node_id") in swarm_nodes
    }


def publish_join_tokens(opts: dict, tokens: dict, waiting: dict) -> bool:
    """Store each role's token of `tokens` readable only by the minions `waiting` ({minion:
    role}) with that role; withdraw the entry of a role nobody waits for. Whether the master
    did it all."""
    done = True
    for role in ROLES:
        name = f"{JOIN_TOKEN}_{role}"
        allowed = sorted(minion for minion, r in waiting.items() if r == role)
        if allowed:
            done &= store(opts, name, tokens[role], allow_minions=allowed)
        else:
            done &= _request(opts, {"cmd": "_mine_delete", "fun": name})
    return done


def join_token(mine_get, manager: str, role: str):
    """The `role` join token `manager` published for this minion, or None; for swarm_join
    only, which passes it to the engine and nowhere else."""
    return mine_get([manager], f"{JOIN_TOKEN}_{role}", tgt_type="list").get(manager)
