"""Check a kickstart with pykickstart, as `ksvalidator -v <version>` does.

pykickstart is a development dependency: it is imported only when a validation is asked for.
`%include` is not followed (the partition file exists only on the installing host), and
deprecation warnings count as problems, as they do for ksvalidator.
"""

from __future__ import annotations

import warnings

from provisioner.errors import ProvisionerError


def validate(text: str, version: str = "RHEL9") -> list[str]:
    """The problems pykickstart finds at that syntax version; empty means valid."""
    try:
        from pykickstart.errors import KickstartError, KickstartParseWarning
        from pykickstart.parser import KickstartParser
        from pykickstart.version import makeVersion, stringToVersion
    except ImportError:
        raise ProvisionerError("validating needs pykickstart (pip install pykickstart)") from None
    try:
        handler = makeVersion(stringToVersion(version))
    except Exception:  # noqa: BLE001 - pykickstart raises several types for unknown versions
        raise ProvisionerError(f"unknown kickstart syntax version '{version}'") from None
    parser = KickstartParser(handler, followIncludes=False, errorsAreFatal=True)
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KickstartParseWarning)
        try:
            parser.readKickstartFromString(text)
        except KickstartError as exc:
            problems.append(" ".join(str(exc).split()))
    for w in caught:
        if issubclass(w.category, KickstartParseWarning | DeprecationWarning):
            problems.append(" ".join(str(w.message).split()))
    return problems
