"""provisioner: a network-boot and install server for clusters, driven by `rocks` commands."""

__version__ = "0.1.0"
