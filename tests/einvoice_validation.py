"""XSD and EN 16931 Schematron validation of e-invoices, for the tests.

Schematron runs the European Commission's compiled EN 16931 XSLT (vendored under
invoices/rendering/validation/en16931/) with Saxon HE from Debian (`libsaxonhe-java` on
`default-jre-headless`). A JVM start costs seconds here, so `schematron_failures` writes
all the documents it gets into one directory and transforms them in ONE Saxon call
(`-s:DIR -o:DIR`), one call per syntax.

Without Java a test skips with the reason, except under CI (`CI=true`), where a missing
Java is a failure: the rules must run there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

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


def require_schematron() -> None:
    """Skip (locally) or fail (CI) when Java and Saxon are not installed."""
    missing = [what for what, ok in (("java", shutil.which("java")), (str(SAXON_JAR), SAXON_JAR.exists())) if not ok]
    if not missing:
        return
    reason = f"EN 16931 Schematron needs {', '.join(missing)}: apt-get install -y default-jre-headless libsaxonhe-java"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


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


def schematron_failures(
    documents: dict[str, bytes], *, syntax: Syntax, rules: Literal["en16931", "br-fr"] = "en16931"
) -> dict[str, list[Failure]]:
    """EN 16931 (or, with rules="br-fr", the French CIUS) Schematron on many documents in one
    JVM: name -> failed asserts flagged fatal or error (warnings are advice and do not count).
    Every name is in the result."""
    require_schematron()
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
            f"-xsl:{(XSLT if rules == 'en16931' else XSLT_FR)[syntax]}",
            f"-o:{output}",
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
        assert completed.returncode == 0, completed.stderr[-2000:]
        results = {}
        for name in documents:
            report = etree.parse(str(output / f"{name}.xml"))
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
