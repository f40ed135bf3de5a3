"""Facts live in the repository: docs/edgetpu.md, cited by section, and nothing outside the checkout.

Users get the repository, not the project's shared folder beside it. So code, notebooks, params,
tests and the README must not cite the fact sheet that once lived there (its content is
docs/edgetpu.md now), and the only paths into ``../shared`` they may name are the documented data
fallbacks, which a user replaces with their own copy through an environment variable:

* ``../shared/data`` (CIFAR-10; ``ACCELNAS_DATA_DIR``, README "Data", ``.ci/run``), with its
  ``cifar10.npz`` and the ``README.md`` that describes that file's format;
* ``../shared/edgetpu/latbench_calibration.csv`` (LatBench; ``ACCELNAS_LATBENCH_CSV``, README on
  how far to trust the latency models, ``accelnas.latency.calibrate.LATBENCH_DEFAULT``), and its
  folder;
* ``../shared`` itself, the folder beside the checkout those two live in.

Every ``docs/edgetpu.md section N`` citation must name a section the page has.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "edgetpu.md"
SCANNED = ("lib", "notebooks", "params", "tests", "docs", "README.md")

#: The section headings of docs/edgetpu.md that citations rely on (number and title are stable).
SECTIONS = {1: "Coral Edge TPU", 2: "Compiler rules and supported ops", 3: "Pixel 4 Edge TPU",
            4: "Reference architectures", 5: "The reward", 6: "LatBench"}

#: The old fact sheet's file name, spelled so that this file does not match itself.
_FACT_SHEET = re.compile(r"(?<![A-Za-z])" + "FACTS" + r"\.md", re.IGNORECASE)
#: A path into the shared folder, written as a string: ``../shared/x``, ``/work/shared/x``,
#: ``shared/x`` (the part after ``shared`` is captured).
_SHARED_PATH = re.compile(r"(?:(?<![\w/.-])\.\./|(?<![\w.-])/work/|(?<![\w/.-]))shared"
                          r"((?:/[\w.-]+)*)/?(?![\w-])")
#: The same as a pathlib join: ``... / "shared" / "data"``.
_SHARED_JOIN = re.compile(r"""["']shared["']((?:\s*/\s*["'][\w.-]+["'])*)""")
#: Which mentions count as paths: those with a ``../`` or ``/work/`` prefix or a sub-path.
ALLOWED_SHARED = {
    "": "the folder beside the checkout that holds the data fallbacks",
    "data": "CIFAR-10 fallback of ACCELNAS_DATA_DIR (README, Data; .ci/run)",
    "data/cifar10.npz": "the file in that folder",
    "data/README.md": "the format note of that folder",
    "edgetpu": "LatBench fallback folder of ACCELNAS_LATBENCH_CSV (README; accelnas.latency.calibrate)",
    "edgetpu/latbench_calibration.csv": "the LatBench calibration split (docs/edgetpu.md section 6)",
}
_BINARY_SUFFIXES = {".pyc", ".npz", ".npy", ".png", ".jpg", ".jpeg", ".gif", ".parquet", ".keras",
                    ".tflite", ".h5", ".whl", ".so", ".pkl", ".pickle", ".zip", ".gz"}
_CITATION = re.compile(r"docs/edgetpu\.md\W{0,6}sections?\s+(\d+)((?:\s*(?:,|and|or)\s*\d\b)*)")


def _files() -> list[Path]:
    """Tracked files (and new ones git does not ignore) under the scanned paths; without git, every
    file under them except caches."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                              "--", *SCANNED], cwd=REPO, capture_output=True, check=True,
                             timeout=60).stdout
        paths = [REPO / p for p in out.decode("utf-8", "replace").split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = []
        for name in SCANNED:
            root = REPO / name
            paths += [root] if root.is_file() else [
                p for p in root.rglob("*") if p.is_file()
                and not {"__pycache__", ".ipynb_checkpoints"} & set(p.parts)]
    return [p for p in paths if p.is_file() and p.suffix.lower() not in _BINARY_SUFFIXES]


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def _lines(pattern: re.Pattern, files: list[Path]):
    for path in files:
        for i, line in enumerate(_text(path).splitlines(), start=1):
            for m in pattern.finditer(line):
                yield path.relative_to(REPO).as_posix(), i, line.strip(), m


@pytest.fixture(scope="module")
def files() -> list[Path]:
    found = _files()
    assert any(p.name == "reward.py" for p in found), "the scan found no library files"
    return found


def test_no_citation_of_the_fact_sheet_outside_the_repository(files):
    hits = [f"{path}:{i}: {line}" for path, i, line, _ in _lines(_FACT_SHEET, files)]
    assert not hits, ("these lines cite the fact sheet that users do not have; cite "
                      "docs/edgetpu.md with its section instead:\n" + "\n".join(hits))


def test_no_path_into_the_shared_folder_but_the_data_fallbacks(files):
    files = [p for p in files if p.resolve() != Path(__file__).resolve()]  # not the patterns here
    hits = []
    for path, i, line, m in _lines(_SHARED_PATH, files):
        prefixed = m.group(0).startswith(("../", "/work/"))
        sub = m.group(1).strip("/")
        if not prefixed and not sub:
            continue  # the English word "shared"
        if sub not in ALLOWED_SHARED:
            hits.append(f"{path}:{i}: {m.group(0)!r} in: {line}")
    for path, i, line, m in _lines(_SHARED_JOIN, files):
        sub = "/".join(re.findall(r"""["']([\w.-]+)["']""", m.group(1)))
        if sub not in ALLOWED_SHARED:
            hits.append(f"{path}:{i}: shared/{sub} (a path join) in: {line}")
    assert not hits, ("these lines point into the project's shared folder, which users do not "
                      "have; only the documented data fallbacks may be named there ("
                      + ", ".join(f"shared/{k}".rstrip("/") for k in ALLOWED_SHARED)
                      + "):\n" + "\n".join(hits))


def test_the_checker_sees_what_it_must():
    """The patterns above catch the forms that were in the tree and let the allowed ones pass."""
    sheet = "FACTS" + ".md"
    assert _FACT_SHEET.search(f"see {sheet} section 2") and _FACT_SHEET.search(f"(../x/{sheet})")
    assert not _FACT_SHEET.search("accelnas.run.ARTIFACTS names every file")
    found = {m.group(1).strip("/") for m in _SHARED_PATH.finditer(
        f"../shared/edgetpu/{sheet} shared/edgetpu/x.md /work/shared/data ../shared/data "
        "weights shared with pixel4 (../shared) shared/data/README.md")}
    assert found == {"edgetpu/" + sheet, "edgetpu/x.md", "data", "", "data/README.md"}
    joined = _SHARED_JOIN.search('ROOT.parent / "shared" / "edgetpu" / "latbench_calibration.csv"')
    assert joined and "edgetpu" in joined.group(1)


def test_fact_page_has_the_cited_sections():
    text = DOC.read_text(encoding="utf-8")
    headings = {int(n): title.strip() for n, title in re.findall(r"^## (\d+)\. (.+)$", text, re.M)}
    assert headings == SECTIONS, "docs/edgetpu.md sections are cited by number: keep them stable"
    for tag in ("[C]", "[S]", "[D]", "[U]"):
        assert f"**{tag}**" in text, f"docs/edgetpu.md must explain the confidence tag {tag}"
    assert "## Sources" in text
    assert not _FACT_SHEET.search(text)


def test_every_citation_names_an_existing_section(files):
    cited, bad = 0, []
    for path, i, line, m in _lines(_CITATION, files):
        numbers = [int(m.group(1)), *map(int, re.findall(r"\d+", m.group(2)))]
        cited += 1
        bad += [f"{path}:{i}: section {n} in: {line}" for n in numbers if n not in SECTIONS]
    assert cited >= 10, f"only {cited} citations of docs/edgetpu.md found: is the pattern stale?"
    assert not bad, "citations of sections docs/edgetpu.md does not have:\n" + "\n".join(bad)
