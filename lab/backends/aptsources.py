"""The Debian archive mirror this machine's apt uses, so the offline base image needs no host name.

Reads both formats: one-line (`deb [opts] URI SUITE COMPONENTS`, sources.list and *.list) and
deb822 (`Types:`/`URIs:`/`Suites:` stanzas, *.sources). The Debian archive entry is a `deb` entry
with a plain release suite (not -security, -updates or -backports) whose URI is not a security
or ports archive.
"""

import re
from pathlib import Path

_SUITE_SUFFIXES = ("-security", "-updates", "-backports", "-proposed-updates")


def _entries_one_line(text):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options like [signed-by=...]
        fields = line.split()
        if len(fields) >= 3:
            yield fields[1], [fields[2]]


def _entries_deb822(text):
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"]) == ["no"]:
            continue
        for uri in fields.get("uris", []):
            yield uri, fields.get("suites", [])


def source_files(etc_apt="/etc/apt"):
    etc_apt = Path(etc_apt)
    files = [etc_apt / "sources.list"] if (etc_apt / "sources.list").is_file() else []
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return files


def entries(etc_apt="/etc/apt"):
    """(uri, suites) for every enabled `deb` entry, in apt's reading order."""
    for path in source_files(etc_apt):
        text = path.read_text(errors="replace")
        parse = _entries_deb822 if path.suffix == ".sources" else _entries_one_line
        yield from parse(text)


def is_debian_archive(uri, suites):
    if "security" in uri or "ports" in uri:
        return False
    plain = [s for s in suites if not s.endswith(_SUITE_SUFFIXES)]
    return bool(plain) and bool(re.search(r"/debian/?$", uri))


def debian_mirror(etc_apt="/etc/apt"):
    """The first Debian archive URI in apt's sources, or None when there is none."""
    for uri, suites in entries(etc_apt):
        if is_debian_archive(uri, suites):
            return uri.rstrip("/")
    return None
