"""Hardened loading: declarations refused fast with one line naming the file, references
turned into markers with their lines, CDATA and comments left alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from provisioner.graph.errors import GraphError
from provisioner.graph.model import load_node
from provisioner.graph.xmlload import Ref, load, split

XXE = """<?xml version="1.0"?>
<!DOCTYPE kickstart [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<kickstart><post>&xxe;</post></kickstart>
"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<kickstart><post>&lol9;</post></kickstart>
"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE kickstart SYSTEM "http://127.0.0.1:9/evil.dtd">
<kickstart><post>echo</post></kickstart>
"""
PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE kickstart [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<kickstart/>
"""
CALL_COND = """<?xml version="1.0"?>
<kickstart>
<post cond="__import__('os')">echo pwned</post>
</kickstart>
"""


@pytest.mark.parametrize(
    "text",
    [XXE, BILLION_LAUGHS, EXTERNAL_DTD, PARAMETER_ENTITY, CALL_COND],
    ids=["xxe", "billion-laughs", "external-dtd", "parameter-entity", "cond-import"],
)
def test_malicious_files_are_refused_fast_with_one_line_naming_the_file(tmp_path: Path, text):
    path = tmp_path / "nodes" / "evil.xml"
    path.parent.mkdir()
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(GraphError) as info:
        load_node(path, "site")
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert elapsed < 0.1
    assert str(path) in message
    assert "\n" not in message
    assert "root:" not in message  # nothing of /etc/passwd leaked into the message


def test_references_become_markers_with_their_lines(tmp_path: Path):
    path = tmp_path / "x.xml"
    path.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        "<kickstart>\n"
        '<post arg="--log=&logfile;">echo &hostname; &amp; &#65;\n'
        "<![CDATA[echo &notaref; <tag>]]>\n"
        "<!-- &nocomment; -->\n"
        "echo <var name='Node_Membership'/> done</post>\n"
        "</kickstart>\n"
    )
    xml = load(path)
    post = xml.root.children[0]
    assert [r.name for r in xml.refs] == ["logfile", "hostname", "Node_Membership"]
    assert [r.line for r in xml.refs] == [3, 3, 6]
    assert split(post.attrs["arg"], xml.refs) == ["--log=", Ref("logfile", 3)]
    pieces = split(post.text, xml.refs)
    assert pieces[0] == "echo "
    assert pieces[1] == Ref("hostname", 3)
    text = "".join(p if isinstance(p, str) else f"<{p.name}>" for p in pieces)
    # Predefined and numeric references are the parser's; CDATA and comments are text.
    assert " & A\n" in text
    assert "echo &notaref; <tag>" in text
    assert "nocomment" not in text
    assert text.endswith("echo <Node_Membership> done")


def test_not_well_formed_is_one_line_with_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.xml"
    path.write_text("<kickstart>\n<post>echo a && b</post>\n</kickstart>\n")
    with pytest.raises(GraphError, match=r"bad\.xml:2: not well-formed XML") as info:
        load(path)
    assert "\n" not in str(info.value)


def test_a_declaration_inside_a_comment_or_cdata_is_text(tmp_path: Path):
    path = tmp_path / "ok.xml"
    path.write_text(
        "<kickstart><!-- <!DOCTYPE x> --><post><![CDATA[<!ENTITY y 'z'>]]></post></kickstart>"
    )
    assert load(path).root.children[0].text == "<!ENTITY y 'z'>"
