"""Roll media, the distribution built from them, and rolls.xml (docs/rolls.md).

- `meta`: a roll's metadata file (`roll-<name>.xml`) and rolls.xml, read and written;
- `media`: `rocks add roll` — a roll from a directory, an ISO or a URL, checked, then moved
  into the install tree whole (`rolls/<name>/<version>/<arch>/`) or not at all;
- `distro`: `rocks create distro` — the yum/dnf repository per architecture from the enabled
  rolls, built aside and switched in with one rename;
- `wheel`: this project as a wheel, which lights-out frontends install from the distribution.

Nothing here touches the database: `provisioner.services.rolls` does, and the commands join
the two.
"""
