"""`make demo`: the whole story against a running `make up`, step by step, as a new user
would do it with curl: register, read the code from the mail folder, verify, log in, stream
the OCR of a sample image, and find the completion mail. Run from the repository's root:

    .venv/bin/python -m scripts.demo

Environment: GATEWAY_URL (default http://127.0.0.1:8000), MAIL_DIR (default var/mail),
DEMO_IMAGE (default docs/sample.png).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import httpx

from notifier.mailbox import OCR_COMPLETED, VERIFICATION_CODE, wait_for_mail

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = os.environ.get("GATEWAY_URL", f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8000')}")
MAIL_DIR = Path(os.environ.get("MAIL_DIR", ROOT / "var" / "mail"))
IMAGE = Path(os.environ.get("DEMO_IMAGE", ROOT / "docs" / "sample.png"))


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m")


def show(response: httpx.Response) -> None:
    print(f"{response.request.method} {response.request.url.path} -> {response.status_code}")
    if response.headers.get("content-type", "").startswith("application/json"):
        print(json.dumps(response.json(), indent=2)[:1500])


def main() -> int:
    email = f"demo-{uuid.uuid4().hex[:6]}@example.com"
    password = "correct horse battery staple"
    try:
        with httpx.Client(base_url=GATEWAY, timeout=60) as http:
            step("is the mesh ready?")
            ready = http.get("/readyz")
            show(ready)
            if ready.status_code != 200:
                print("not ready: start it with `make up` in another terminal and wait for it")
                return 1

            step(f"register {email}")
            show(
                http.post("/auth/register", json={"name": "Demo User", "email": email, "password": password})
            )

            step(f"the verification code, from the mail in {MAIL_DIR}")
            mail = wait_for_mail(MAIL_DIR, email, kind=VERIFICATION_CODE, timeout=30)
            print(f"{mail.path.name}: {mail.subject!r}")
            code = mail.code or ""

            step(f"verify with {code}")
            show(http.post("/auth/verify_otp", json={"email": email, "otp": code}))

            step("log in")
            login = http.post("/auth/login", json={"username": email, "password": password})
            show(login)
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

            step("who am I?")
            show(http.get("/auth/me", headers=headers))

            step(f"stream the OCR of {IMAGE.relative_to(ROOT) if IMAGE.is_relative_to(ROOT) else IMAGE}")
            files = {"file": (IMAGE.name, IMAGE.read_bytes(), "image/png")}
            with http.stream("POST", "/ocr/stream", headers=headers, files=files) as stream:
                print(f"POST /ocr/stream -> {stream.status_code} ({stream.headers.get('content-type')})")
                for line in stream.iter_lines():
                    if line.strip():
                        print(line)

            step("the completion mail")
            done = wait_for_mail(MAIL_DIR, email, kind=OCR_COMPLETED, timeout=30)
            print(f"{done.path.name}: {done.subject!r}")
            print(done.body)
    except (httpx.HTTPError, TimeoutError, KeyError) as exc:
        print(f"\ndemo stopped: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
