"""Adding hosts in a batch (`add_hosts`, what `rocks add cluster` uses): the same checks as one
`add_host` after the other, one flush, and `host_added` only when asked for."""

from __future__ import annotations

import pytest

from provisioner.errors import Conflict


class Recorder:
    def __init__(self) -> None:
        self.added: list[str] = []

    def host_added(self, session, host) -> None:
        self.added.append(host.name)


def test_batch_ranks_follow_each_other_and_actions_may_be_none(rocks, engine):
    from provisioner.db.engine import transaction
    from provisioner.services.hosts import NewHost, add_hosts

    rocks.ok("add host compute-0-0")
    hooks = Recorder()
    with transaction(engine) as session:
        hosts = add_hosts(
            session,
            hooks,
            [
                NewHost("a", "compute"),
                NewHost("b", "Compute", rank=7),
                NewHost("c", "compute"),
                NewHost("d", "compute", installaction=None, runaction=None),
            ],
        )
        assert [(h.name, h.rack, h.rank) for h in hosts] == [
            ("a", 0, 1),
            ("b", 0, 7),
            ("c", 0, 8),
            ("d", 0, 9),
        ]
        assert (hosts[3].installaction, hosts[3].runaction) == (None, None)
        assert (hosts[0].installaction, hosts[0].runaction) == ("install", "os")
    assert hooks.added == ["a", "b", "c", "d"]


def test_batch_checks_every_host_and_notifies_only_when_asked(rocks, engine):
    from provisioner.db.engine import transaction
    from provisioner.services.hosts import NewHost, add_hosts

    hooks = Recorder()
    with pytest.raises(Conflict, match="host 'x' already exists"):
        with transaction(engine) as session:
            add_hosts(session, hooks, [NewHost("x", "compute"), NewHost("X ", "compute")])
    with pytest.raises(Conflict, match="name of another appliance"):
        with transaction(engine) as session:
            add_hosts(session, hooks, [NewHost("y", "compute"), NewHost("frontend", "compute")])
    with transaction(engine) as session:
        add_hosts(session, hooks, [NewHost("compute-1-4")], notify=False)
    assert hooks.added == []
    assert "compute-1-4:" in rocks.ok("list host compute-1-4")
    assert "unknown host" in rocks("list host x").err
