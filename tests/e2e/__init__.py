"""End-to-end tests: real PXE clients (QEMU, libvirt) in network namespaces."""
