"""Typed SQLAlchemy 2.0 models of the cluster database. Importing this package imports the core's
tables; a roll's own tables (the Xen roll's `vm_nodes`, `vm_disks`) are in the roll's models
module, on the same `Base`."""

from provisioner.db.models.attributes import (
    ApplianceAttribute,
    GlobalAttribute,
    HostAttribute,
    OSAttribute,
)
from provisioner.db.models.base import Base, Meta
from provisioner.db.models.boot import BootAction, BootFlags
from provisioner.db.models.events import Discovery, InstallEvent
from provisioner.db.models.hosts import Appliance, Host, Membership
from provisioner.db.models.networks import Alias, Interface, Subnet
from provisioner.db.models.rolls import HostRoll, Roll
from provisioner.db.models.storage import Partition

__all__ = [
    "Alias",
    "Appliance",
    "ApplianceAttribute",
    "Base",
    "BootAction",
    "BootFlags",
    "Discovery",
    "GlobalAttribute",
    "Host",
    "HostAttribute",
    "HostRoll",
    "InstallEvent",
    "Interface",
    "Membership",
    "Meta",
    "OSAttribute",
    "Partition",
    "Roll",
    "Subnet",
]
