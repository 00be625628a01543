"""XSD and EN 16931 Schematron validation of e-invoices, for the tests.

Schematron runs the European Commission's compiled EN 16931 XSLT (vendored under
invoices/rendering/validation/en16931/) and FNFE-MPE's French CIUS (BR-FR) XSLT
(validation/cius_fr/) with **SaxonC-HE** (`saxonche`, a dev dependency: a native library, no
JVM), in the test process: each stylesheet is compiled once per process and kept.
Debian's Saxon-HE 9.9 cannot compile the BR-FR UBL stylesheet, so without saxonche
that one cannot run; the others then fall back to Saxon HE from Debian (`libsaxonhe-java` on
`default-jre-headless`), all documents of a call in ONE JVM (`-s:DIR -o:DIR`).

When a rule set cannot run, a test skips with the reason, except under CI (`CI=true`),
where it fails: the rules must run there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest
from lxml import etree

VALIDATION = Path(__file__).resolve().parent.parent / "invoices" / "rendering" / "validation"
SAXON_JAR = Path("/usr/share/java/Saxon-HE.jar")
XSLT = {
    "cii": VALIDATION / "en16931" / "EN16931-CII-validation.xslt",
    "ubl": VALIDATION / "en16931" / "EN16931-UBL-validation.xslt",
}
# The French CIUS (BR-FR rules of AFNOR XP Z12-012, flow 2), FNFE-MPE's compiled Schematron
# (Apache-2.0; invoices/rendering/validation/cius_fr/README.md says where from).
XSLT_FR = {
    "cii": VALIDATION / "cius_fr" / "BR-FR-Flux2-Schematron-CII.xslt",
    "ubl": VALIDATION / "cius_fr" / "BR-FR-Flux2-Schematron-UBL.xslt",
}
SCHEMAS = {
    "cii": VALIDATION / "cii" / "CrossIndustryInvoice_100pD16B.xsd",
    "ubl-invoice": VALIDATION / "ubl" / "UBL-Invoice-2.1-validation.xsd",
    "ubl-credit_note": VALIDATION / "ubl" / "UBL-CreditNote-2.1-validation.xsd",
}
SVRL = "http://purl.oclc.org/dsdl/svrl"
Syntax = Literal["cii", "ubl"]


@dataclass(frozen=True)
class Failure:
    rule: str
    flag: str
    text: str


def _saxonche() -> Any | None:
    if os.environ.get("TARIF_SCHEMATRON_ENGINE") == "java":  # to compare the two engines
        return None
    try:
        import saxonche  # deferred: a dev dependency, absent from production installs
    except ImportError:
        return None
    return saxonche


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_schematron(*, syntax: Syntax = "cii", rules: str = "en16931") -> None:
    """Skip (locally) or fail (CI) when no Saxon can run these rules."""
    if _saxonche() is not None:
        return
    if syntax == "ubl" and rules == "br-fr":
        _skip_or_fail("the BR-FR UBL Schematron needs SaxonC (pip install saxonche): Saxon-HE 9.9 cannot compile it")
    missing = [what for what, ok in (("java", shutil.which("java")), (str(SAXON_JAR), SAXON_JAR.exists())) if not ok]
    if missing:
        _skip_or_fail(
            f"Schematron needs saxonche, or {', '.join(missing)}: "
            "apt-get install -y default-jre-headless libsaxonhe-java"
        )


@cache
def _schema(kind: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS[kind])))


def xsd_errors(xml: bytes) -> list[str]:
    """The XSD errors of a CII D16B or UBL 2.1 Invoice / CreditNote document ([] if valid)."""
    root = etree.fromstring(xml)
    local = etree.QName(root).localname
    kind = {"CrossIndustryInvoice": "cii", "Invoice": "ubl-invoice", "CreditNote": "ubl-credit_note"}[local]
    schema = _schema(kind)
    if schema.validate(root):
        return []
    return [f"line {error.line}: {error.message}" for error in schema.error_log]


_saxon_lock = threading.Lock()


@cache
def _saxon_processor() -> Any:
    return _saxonche().PySaxonProcessor(license=False)  # one per process, never released


@cache
def _compiled(stylesheet: Path) -> Any:
    processor = _saxon_processor()
    return processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(stylesheet))


def _svrl_with_saxonche(documents: dict[str, bytes], stylesheet: Path) -> dict[str, bytes]:
    with _saxon_lock:
        processor, executable = _saxon_processor(), _compiled(stylesheet)
        reports = {}
        for name, xml in documents.items():
            node = processor.parse_xml(xml_text=xml.decode("utf-8"))
            reports[name] = executable.transform_to_string(xdm_node=node).encode("utf-8")
        return reports


def _svrl_with_java(documents: dict[str, bytes], stylesheet: Path) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="tarif-schematron-") as work:
        source, output = Path(work, "in"), Path(work, "out")
        source.mkdir()
        output.mkdir()
        for name, xml in documents.items():
            (source / f"{name}.xml").write_bytes(xml)
        command = [
            "java",
            "-Xss8m",
            "-cp",
            str(SAXON_JAR),
            "net.sf.saxon.Transform",
            f"-s:{source}",
            f"-xsl:{stylesheet}",
            f"-o:{output}",
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
        assert completed.returncode == 0, completed.stderr[-2000:]
        return {name: (output / f"{name}.xml").read_bytes() for name in documents}


def schematron_failures(
    documents: dict[str, bytes], *, syntax: Syntax, rules: Literal["en16931", "br-fr"] = "en16931"
) -> dict[str, list[Failure]]:
    """EN 16931 (or, with rules="br-fr", the French CIUS) Schematron on many documents:
    name -> failed asserts flagged fatal or error (warnings are advice and do not count).
    Every name is in the result."""
    require_schematron(syntax=syntax, rules=rules)
    stylesheet = (XSLT if rules == "en16931" else XSLT_FR)[syntax]
    run = _svrl_with_saxonche if _saxonche() is not None else _svrl_with_java
    results = {}
    for name, svrl in run(documents, stylesheet).items():
        report = etree.fromstring(svrl)
        results[name] = [
            Failure(
                rule=element.get("id") or element.get("test", ""),
                flag=element.get("flag") or "error",
                text=" ".join(element.findtext(f"{{{SVRL}}}text", default="").split()),
            )
            for element in report.iter(f"{{{SVRL}}}failed-assert")
            if (element.get("flag") or "error") in ("fatal", "error")
        ]
    return results
