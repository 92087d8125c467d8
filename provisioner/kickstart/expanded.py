"""The expanded XML of `rocks list host xml`: the traversed node files as one `<kickstart>`
document, with the values the compilation was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from provisioner.graph.errors import GraphError, where
from provisioner.graph.model import NodeFile
from provisioner.graph.xmlload import Ref, Tag, split
from provisioner.kickstart.nodes import Info, NodeEntry, display_path
from provisioner.kickstart.template import Slot

if TYPE_CHECKING:
    from lxml import etree


def expanded_xml(
    nodes: Sequence[NodeEntry], values: Mapping[str, str], info: Info, host: str
) -> str:
    """The traversed node files as one `<kickstart>` document: references replaced by values
    (escaped by the serializer), tags whose conditions fail left out with a comment, every
    top-level tag annotated with the file and roll it came from."""
    from lxml import etree

    root = etree.Element("kickstart")
    root.set("host", host)
    root.set("graph", info.graph)
    root.set("root", info.root)
    root.text = "\n"
    for entry in nodes:
        for nf in entry.files:
            comment = etree.Comment(f" {entry.name}: {display_path(nf)} ")
            comment.tail = "\n"
            root.append(comment)
            for tag in nf.root.children:
                if tag.name in ("description", "copyright", "changelog"):
                    continue
                _xml_tag(root, tag, nf, values, top=True)
    root[-1].tail = "\n" if len(root) else None
    return etree.tostring(root, encoding="unicode", xml_declaration=False) + "\n"


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _subst(text: str, nf: NodeFile, values: Mapping[str, str]) -> str:
    out = []
    for piece in split(text, nf.refs):
        if isinstance(piece, Ref):
            place = where(nf.path, piece.line)
            value = Slot(piece.name, place).value(values)
            if _NOT_XML.search(value):
                raise GraphError(
                    f"{place}: the value of '{piece.name}' has control characters XML cannot hold"
                )
            out.append(value)
        else:
            out.append(piece)
    return "".join(out)


def _xml_tag(
    parent: etree._Element, tag: Tag, nf: NodeFile, values: Mapping[str, str], top: bool
) -> None:
    from lxml import etree

    cond = nf.cond(tag)
    if cond is not None and not cond(values):
        comment = etree.Comment(f" <{tag.name}> line {tag.line}: condition false ")
        comment.tail = _subst(tag.tail, nf, values)
        parent.append(comment)
        return
    el = etree.SubElement(parent, tag.name)
    for key, value in tag.attrs.items():
        el.set(key, _subst(value, nf, values))
    if top:
        el.set("file", display_path(nf))
        el.set("line", str(tag.line))
    el.text = _subst(tag.text, nf, values)
    for child in tag.children:
        _xml_tag(el, child, nf, values, top=False)
    el.tail = _subst(tag.tail, nf, values)
