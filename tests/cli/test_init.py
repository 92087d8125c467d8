"""`rocks init frontend`: schema, defaults, idempotence, site.attrs."""

from __future__ import annotations

import json

import pytest

from provisioner.config import Config
from provisioner.testing.pytest_plugin import TEST_ATTRS, Rocks


@pytest.fixture
def fresh(tmp_path, empty_url, hooks) -> Rocks:
    return Rocks(Config.for_home(tmp_path / "home", database_url=empty_url), hooks)


def test_init_creates_the_defaults(fresh, hooks):
    out = fresh.ok("init", "frontend", *TEST_ATTRS)
    assert out.splitlines()[0].startswith("created the database schema (revision ")
    appliances = len(hooks.register_appliances())
    assert appliances >= 6  # the base roll's six, and those of the other rolls loaded
    assert f"{appliances} appliances" in out and "2 networks" in out and "1 host" in out
    assert json.loads(fresh.ok("list host output-format=json output-col=host,membership")) == [
        {"host": "frontend", "membership": "Frontend"}
    ]
    memberships = fresh.ok("list membership").splitlines()
    assert memberships[0].split() == ["MEMBERSHIP", "APPLIANCE"]
    assert "Compute:           compute" in memberships
    assert {r["action"] for r in json.loads(fresh.ok("list bootaction output-format=json"))} >= {
        "install",
        "install headless",
        "memtest",
        "os",
        "pxeflash",
        "rescue",
    }
    attrs = {r["attr"]: r["value"] for r in json.loads(fresh.ok("list attr output-format=json"))}
    assert attrs["Kickstart_PrivateNetmaskCIDR"] == "16"
    assert attrs["Kickstart_PrivateBroadcast"] == "10.1.255.255"
    assert attrs["Kickstart_PublicNetwork"] == "137.110.119.0"
    assert attrs["Kickstart_PublicBroadcast"] == "137.110.119.255"
    assert attrs["Info_CertificateCountry"] == "US"
    interfaces = json.loads(fresh.ok("list host interface frontend output-format=json"))
    assert [(i["subnet"], i["ip"]) for i in interfaces] == [
        ("private", "10.1.1.1"),
        ("public", "137.110.119.114"),
    ]


def test_init_again_loses_nothing(fresh):
    fresh.ok("init", "frontend", *TEST_ATTRS)
    fresh.ok("add host compute-0-0")
    fresh.ok("set attr Kickstart_Timezone Europe/Paris")
    fresh.ok("remove bootaction rescue")
    fresh.ok("set appliance attr compute managed false")
    out = fresh.ok("init frontend")
    # A removed default comes back; everything set by hand stays.
    assert "1 bootaction" in out
    assert "compute-0-0" in fresh.ok("list host")
    assert fresh.ok("report host attr frontend attr=Kickstart_Timezone") == "Europe/Paris\n"
    assert "managed false" in " ".join(fresh.ok("list appliance attr compute attr=managed").split())
    assert fresh.ok("init frontend").strip().endswith("nothing to add")


def test_explicit_attributes_overwrite(fresh, tmp_path):
    fresh.ok("init", "frontend", *TEST_ATTRS)
    site = tmp_path / "site.attrs"
    site.write_text(
        "Kickstart_Timezone:Asia/Tokyo\nInfo_ClusterName:vi-1: the first\nhostname:ignored\n"
    )
    out = fresh.ok(f"init frontend attrs={site} Kickstart_Keyboard=fr")
    assert "set 3 attribute(s)" in out
    assert fresh.ok("report host attr frontend attr=Kickstart_Timezone") == "Asia/Tokyo\n"
    assert fresh.ok("report host attr frontend attr=Info_ClusterName") == "vi-1: the first\n"
    assert fresh.ok("report host attr frontend attr=Kickstart_Keyboard") == "fr\n"
    assert "hostname" not in fresh.ok("list attr")


def test_bad_site_attrs(fresh, tmp_path):
    site = tmp_path / "bad.attrs"
    site.write_text("no colon here\n")
    assert fresh(f"init frontend attrs={site}").err == f"error: {site}:1: not a 'Key:Value' line\n"
    assert "cannot read" in fresh(f"init frontend attrs={tmp_path / 'missing'}").err


def test_database_password_is_not_printed(fresh):
    from provisioner.plugins.base.commands.init import _safe

    assert (
        _safe("postgresql+psycopg://admin:s3cret@db/cluster")
        == "postgresql+psycopg://admin:***@db/cluster"
    )
    assert (
        _safe("sqlite:////var/lib/provisioner/provisioner.db")
        == "sqlite:////var/lib/provisioner/provisioner.db"
    )
