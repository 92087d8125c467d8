"""Fixtures for end-to-end tests that boot real QEMU PXE clients in a network namespace.

`netns` (namespace + bridge + taps, torn down with everything started in it), `boot_assets`
(cached kernel, initrd, loaders), `tftp_root`, `http_server`, `start_dnsmasq`, `start_vm`,
`libvirtd`. docs/dev/e2e.md explains them. Tests skip only where boots cannot run at all
(not root, no /dev/net/tun, no QEMU), and fail instead when $CI is set.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.testing import netlab, netlab_assets, netlab_libvirt
from provisioner.testing.netlab import Dnsmasq, HttpServer, Netns, QemuVM

_report_key = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_report_key, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def netlab_ready() -> None:
    """Skip (or fail under CI) when this machine cannot boot lab VMs at all."""
    reasons = netlab.skip_reasons()
    if reasons:
        message = "end-to-end boot tests cannot run: " + "; ".join(reasons)
        if netlab.in_ci():
            pytest.fail(message + " (CI is set: these tests must run)")
        pytest.skip(message)
    netlab.require_tools("ip", "dnsmasq")
    stale = netlab.stale_namespaces()
    if stale:
        warnings.warn(
            f"stale lab namespaces from crashed runs: {' '.join(stale)}; remove them with "
            "`python -m provisioner.testing.netlab cleanup`",
            stacklevel=1,
        )


@pytest.fixture(scope="session")
def boot_assets(netlab_ready: None) -> netlab_assets.BootAssets:
    return netlab_assets.ensure_assets()


@pytest.fixture
def netns(netlab_ready: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Netns]:
    """A fresh namespace: bridge br0 with 10.98.N.1/24 and fd98:N::1/64, taps tap0 and tap1.
    Logs go to <tmp_path>/netlab; on failure their tails are printed at teardown."""
    ns = Netns.create(tmp_path / "netlab", taps=2)
    try:
        yield ns
    finally:
        reports = request.node.stash.get(_report_key, {})
        if any(r.failed for r in reports.values()):
            _print_logs(ns.workdir)
        ns.close()


def _print_logs(workdir: Path) -> None:
    print(f"\n==== netlab logs in {workdir}", file=sys.stderr)
    for path in sorted(workdir.glob("*.log")) + sorted(workdir.glob("*/log/qemu/*.log")):
        print(f"---- {path.name} (last lines)\n{netlab.tail(path, 25)}", file=sys.stderr)


@pytest.fixture
def tftp_root(boot_assets: netlab_assets.BootAssets, tmp_path: Path) -> Path:
    """pxelinux.0, lpxelinux.0, ldlinux.c32, ipxe.efi, snponly.efi, vmlinuz, initrd.gz and an
    empty pxelinux.cfg/ in a directory of the test's own."""
    return boot_assets.populate_tftp(tmp_path / "tftp")


@pytest.fixture
def http_server(netns: Netns, tmp_path: Path) -> HttpServer:
    """The namespace HTTP server on 10.98.N.1:8000 serving <tmp_path>/www, recording requests."""
    return HttpServer(netns, tmp_path / "www").start()


@pytest.fixture
def start_dnsmasq(netns: Netns) -> Callable[..., Dnsmasq]:
    """start_dnsmasq(config_text, name="dnsmasq") -> a running Dnsmasq (stopped at teardown)."""

    def start(config: str, name: str = "dnsmasq") -> Dnsmasq:
        return Dnsmasq(netns, config, name=name).start()

    return start


@pytest.fixture
def start_vm(netns: Netns) -> Callable[..., QemuVM]:
    """start_vm(mac=..., tap="tap0", firmware="bios"|"uefi", nic=..., name=...) -> a started
    QemuVM; `vm.wait(120)` waits for the guest to power off."""

    def start(*, mac: str, tap: str = "tap0", **kwargs: Any) -> QemuVM:
        return QemuVM(netns, tap=tap, mac=mac, **kwargs).start()

    return start


@pytest.fixture
def libvirtd(netns: Netns) -> Iterator[netlab_libvirt.Libvirtd]:
    """A private libvirtd in the namespace; connect with `libvirtd.connect()` or its `uri`.
    Domains left at teardown are destroyed and undefined."""
    netlab.require_tools("libvirtd")
    daemon = netlab_libvirt.Libvirtd(netns).start()
    try:
        yield daemon
    finally:
        daemon.stop()
