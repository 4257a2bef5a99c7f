"""Judges memcheck's XML report of `make valgrind`: fails on any definitely or indirectly
lost block, and on any other error whose stack goes through the driver (pybridge.so,
pybridge_manager.so).
Errors elsewhere (ERTS, libc) are counted and printed but do not fail the run."""

import collections
import sys
import xml.etree.ElementTree as ET

LEAKS = {"Leak_DefinitelyLost", "Leak_IndirectlyLost"}


def in_driver(err: ET.Element) -> bool:
    return any(
        (f.findtext("obj") or "").endswith(("/pybridge.so", "/pybridge_manager.so"))
        or (f.findtext("dir") or "").endswith("/c_src")
        for f in err.iterfind("stack/frame")
    )


def show(err: ET.Element) -> str:
    what = err.findtext("what") or err.findtext("xwhat/text")
    lines = [f"  {err.findtext('kind')}: {what}"]
    for part in err:  # a stack, then for some kinds "Address ... was alloc'd" and its stack
        if part.tag == "auxwhat":
            lines.append(f"  {part.text}")
        for f in part.iterfind("frame") if part.tag == "stack" else ():
            file = f.findtext("file")
            where = f"{file}:{f.findtext('line')}" if file else f.findtext("obj")
            lines.append(f"    {f.findtext('fn') or '???'} ({where})")
    return "\n".join(lines)


def main(path: str) -> int:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        print(f"valgrind: no complete report in {path}: {exc}")
        return 1
    errors = root.findall("error")
    bad = [e for e in errors if e.findtext("kind") in LEAKS or in_driver(e)]
    others = collections.Counter(e.findtext("kind") for e in errors if e not in bad)
    lost = collections.Counter[str]()
    for e in bad:
        lost[e.findtext("kind") or ""] += int(e.findtext("xwhat/leakedbytes") or 0)
    in_drv = sum(1 for e in bad if e.findtext("kind") not in LEAKS)
    print(
        f"valgrind: definitely lost {lost['Leak_DefinitelyLost']} bytes, indirectly lost "
        f"{lost['Leak_IndirectlyLost']} bytes; driver errors {in_drv}; "
        f"other errors (not the driver) {dict(others) or 0}; suppressed (ERTS, erts.supp) "
        f"{sum(int(p.findtext('count') or 0) for p in root.iterfind('suppcounts/pair'))}"
    )
    for e in bad:
        print(show(e))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
