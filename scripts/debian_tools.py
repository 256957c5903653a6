"""Installs the Debian tools the tests and benchmarks drive, when they are missing.

`make test` needs Chromium (the web page in a real browser), Prometheus (promtool checks
the rules; a real server scrapes the e2e mesh), Tesseract's English model (the
OCR_RECOGNIZER=tesseract tests), its Vietnamese, Korean, German and French models (the
languages ocr_svc reads through Tesseract) and the fonts the test pages in those languages
are drawn with (DejaVu has Vietnamese, Nanum has Hangul); `make bench` needs h2load, wrk,
Tesseract and the same models and fonts. Each is installed with apt-get as root (or
`sudo -n`); where that is not possible the script says
what is missing and the tests that need it skip with that reason.

    python scripts/debian_tools.py test     # chromium, prometheus, tesseract
    python scripts/debian_tools.py bench    # h2load, wrk, tesseract
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

# command -> Debian package, per use
TOOLS: dict[str, dict[str, str]] = {
    # tesseract-ocr brings tesseract-ocr-eng, the model OCR_RECOGNIZER=tesseract reads with.
    "test": {
        "chromium": "chromium",
        "promtool": "prometheus",
        "prometheus": "prometheus",
        "tesseract": "tesseract-ocr",
    },
    "bench": {"h2load": "nghttp2-client", "wrk": "wrk", "tesseract": "tesseract-ocr"},
}
# Tesseract's models (any Tesseract version's directory) and the test pages' fonts.
LANGUAGE_FILES: dict[str, str] = {
    # page orientation (0/90/180/270) before detection: Tesseract's OSD model
    "/usr/share/tesseract-ocr/*/tessdata/osd.traineddata": "tesseract-ocr-osd",
    "/usr/share/tesseract-ocr/*/tessdata/vie.traineddata": "tesseract-ocr-vie",
    "/usr/share/tesseract-ocr/*/tessdata/kor.traineddata": "tesseract-ocr-kor",
    "/usr/share/tesseract-ocr/*/tessdata/deu.traineddata": "tesseract-ocr-deu",
    "/usr/share/tesseract-ocr/*/tessdata/fra.traineddata": "tesseract-ocr-fra",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf": "fonts-dejavu-core",
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf": "fonts-nanum",
}
# file pattern -> Debian package, per use
FILES: dict[str, dict[str, str]] = {"test": LANGUAGE_FILES, "bench": LANGUAGE_FILES}


def missing_packages(use: str) -> list[str]:
    """The packages whose commands are not on PATH or whose files are not installed."""
    missing = {package for tool, package in TOOLS[use].items() if shutil.which(tool) is None}
    missing |= {package for pattern, package in FILES[use].items() if not glob.glob(pattern)}
    return sorted(missing)


def ensure(use: str) -> list[str]:
    """Install what `use` needs; returns the packages still missing afterwards."""
    missing = missing_packages(use)
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        return missing
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    if apt[0] == "sudo" and shutil.which("sudo") is None:
        return missing
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {', '.join(missing)} from Debian's packages ...", flush=True)
    # Wait for a dpkg lock another install holds (a bench and a test run started together)
    # instead of failing at once.
    apt = [*apt, "-o", "DPkg::Lock::Timeout=600"]
    subprocess.run([*apt, "update", "-qq"], check=False, env=env)
    install = [*apt, "install", "-y", "-qq", "--no-install-recommends", *missing]
    subprocess.run(install, check=False, env=env, stdout=subprocess.DEVNULL)
    return missing_packages(use)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in TOOLS:
        print(f"usage: debian_tools.py {{{','.join(TOOLS)}}}", file=sys.stderr)
        return 2
    still = ensure(argv[0])
    if still:
        print(f"not installed (tests that need them skip): {', '.join(still)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
