"""The 256-D pose layout is written once, in dposer/spec/layout.py: other modules ask it for slices (PART_SLICES,
KEY_SLICES, joint_vector_slice, ...) instead of writing ``63:108``. This test counts the hard-coded slices of the
vector left elsewhere in backend/dposer and blender_dposer, prints where they are, and fails when there are more
than the budget."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A subscript slice whose bounds are layout boundaries ([63:108], [:, :63], [153:], ...) or slice(0, 63) & co.
_B = r"(?:0|63|108|153|156|256)"
_SUBSCRIPT = re.compile(rf"[\[,]\s*(?P<a>{_B})?\s*:\s*(?P<b>{_B})?\s*(?=[\],])")
_SLICE_CALL = re.compile(rf"\bslice\(\s*{_B}\s*,\s*{_B}\s*\)")
BUDGET = 0  # slices of the vector written outside layout.py: none


def layout_literals(path: Path) -> list[tuple[int, str]]:
    hits = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        subs = [m for m in _SUBSCRIPT.finditer(code) if _is_layout(m["a"], m["b"])]
        hits += [(n, m.group(0).strip("[, ")) for m in subs]
        hits += [(n, m.group(0)) for m in _SLICE_CALL.finditer(code)]
    return hits


def _is_layout(a: str | None, b: str | None) -> bool:
    """[63:108], [:63], [153:], [0:63] are layout slices; [:], [0:], [:256], [0:256] (all of it) and [:0] are not."""
    a = None if a == "0" else a
    b = None if b in ("0", "256") else b
    return bool(a or b)


def scan() -> dict[str, list[tuple[int, str]]]:
    out = {}
    for root in ("backend/dposer", "blender_dposer"):
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "backend/dposer/spec/layout.py":
                continue
            if hits := layout_literals(path):
                out[rel] = hits
    return out


def test_detector_sees_layout_slices(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("a = v[:, 63:108]\nb = v[:63]\nc = slice(153, 156)\nd = v[:, :]\ne = {'body': 63, 'x': 1}\n"
                     "f = v[108:]\ng = v[:0]  # [63:108] in a comment\n")
    assert [h[0] for h in layout_literals(probe)] == [1, 2, 3, 6]


def test_layout_slices_live_in_layout_py():
    found = scan()
    for rel, hits in found.items():
        print(rel, ", ".join(f"{n}: {s}" for n, s in hits))
    total = sum(len(h) for h in found.values())
    assert total <= BUDGET, f"{total} hard-coded layout slices outside dposer/spec/layout.py (budget {BUDGET}): {found}"
