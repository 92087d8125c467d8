"""DHCP configuration: ISC dhcpd (printed, as Rocks did) and dnsmasq (printed or written)."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context


def dnsmasq_options(ctx: Context) -> Any:
    from provisioner.dhcp.dnsmasq import DnsmasqOptions
    from provisioner.services.attrs import global_value
    from provisioner.services.urls import base_url

    frontend = global_value(ctx.reader, "Kickstart_PrivateAddress")
    tftp = ctx.config.tftp_address if ctx.config.tftp_address not in ("0.0.0.0", "::") else frontend
    return DnsmasqOptions(
        conf_dir=ctx.config.dnsmasq_conf_dir,
        tftp_server=tftp or "",
        http_url=base_url(ctx.config, ctx.reader),
        lease_port=ctx.config.http_port,
        interface=ctx.config.dhcp_interface,
    )


class ReportHostDhcpd(Command):
    """Print an ISC dhcpd.conf for the private network: a fixed address per known MAC."""

    name = "report host dhcpd"
    examples = (
        ("rocks report host dhcpd > /etc/dhcp/dhcpd.conf", "For a site that runs ISC dhcpd."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.dhcp.isc import render_dhcpd

        ctx.write(render_dhcpd(ctx.reader))


class ReportHostDnsmasq(Command):
    """Print the dnsmasq configuration and host files that 'rocks sync config' writes."""

    name = "report host dnsmasq"
    examples = (("rocks report host dnsmasq", "What dnsmasq would be told."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.dhcp.dnsmasq import host_lines, render_main

        opts = dnsmasq_options(ctx)
        ctx.write(f"# {opts.conf_dir / 'dnsmasq.conf'}")
        ctx.write(render_main(ctx.reader, opts))
        for name, line in sorted(host_lines(ctx.reader).items()):
            ctx.write(f"# {opts.conf_dir / 'hosts' / name}\n{line}")


class SyncConfig(Command):
    """Write what external daemons need (dnsmasq's configuration and host files).

    dnsmasq rereads its host files by itself; when its main configuration changed, the command
    in the dnsmasq_restart setting runs (or you are told to restart dnsmasq).
    """

    name = "sync config"
    params = (Param("quiet", "Print nothing when nothing changed.", "bool", False),)
    examples = (("rocks sync config", "After adding hosts or changing networks."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        import subprocess

        from provisioner.dhcp.dnsmasq import write_config

        result = write_config(ctx.reader, dnsmasq_options(ctx))
        if result["written"] or result["removed"] or not params["quiet"]:
            ctx.write(
                f"dnsmasq: {result['written']} host file(s) written, {result['removed']} removed "
                f"in {ctx.config.dnsmasq_conf_dir}"
            )
        if result["main"]:
            if ctx.config.dnsmasq_restart:
                done = subprocess.run(
                    ctx.config.dnsmasq_restart, shell=True, capture_output=True, text=True
                )
                if done.returncode:
                    from provisioner.errors import ProvisionerError

                    raise ProvisionerError(
                        f"dnsmasq restart failed: {done.stderr.strip() or done.returncode}"
                    )
                ctx.write("dnsmasq: configuration changed, restarted")
            else:
                ctx.write(f"dnsmasq: {result['path']} changed: restart dnsmasq to use it")
