def test_list_host_shows_frontend(rocks):
    out = rocks.ok("list host")
    assert out.splitlines()[0].split() == [
        "HOST",
        "MEMBERSHIP",
        "CPUS",
        "RACK",
        "RANK",
        "RUNACTION",
        "INSTALLACTION",
        "COMMENT",
    ]
    assert out.splitlines()[1].startswith("frontend:")
