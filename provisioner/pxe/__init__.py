"""PXE: boot-config renderers (pxelinux, GRUB, iPXE) and the TFTP service that serves them.

Nothing is imported here, so importing one renderer does not pull in the TFTP server.
"""
