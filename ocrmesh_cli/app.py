"""The `ocrmesh` commands: thin typer entrypoints over ocrmesh_cli's plain functions.

Exit codes (ocrmesh_cli.errors): 0 ok, 1 other failure, 2 usage, 3 auth, 4 rejected input,
5 service unavailable. Expected failures are one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncGenerator, Coroutine
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Final, NoReturn, TypeVar

import typer

from ocrmesh.platform.settings import GrpcTls
from ocrmesh.rules.endpoints import DEFAULT_OCR_ADDR
from ocrmesh.rules.languages import InvalidLanguages, parse_language_list
from ocrmesh.rules.ocr_events import OcrEvent
from ocrmesh_cli.batch import MAX_IMAGE_BYTES, Recognizer, read_image, recognize_files
from ocrmesh_cli.client import DEFAULT_URL, Gateway, User, normalize_url
from ocrmesh_cli.config import SavedLogin, TokenStore
from ocrmesh_cli.documents import FORMATS, Destination, Rendered, Renderer, destinations, render_files
from ocrmesh_cli.errors import CliError, ExitCode
from ocrmesh_cli.output import JsonOutput, OcrOutput, RichOutput, TextOutput, error_line

T = TypeVar("T")

MAX_PASSWORD_CHARS: Final = 1024
MAX_FILES: Final = 10_000
MAX_CONCURRENCY: Final = 16

app = typer.Typer(
    name="ocrmesh",
    help="Sign up, log in and read the text in images with an ocrmesh gateway.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback of an unexpected failure must never print locals: they hold passwords and tokens.
    pretty_exceptions_show_locals=False,
)


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_url(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="OCRMESH_URL",
        callback=_url,
        help=f"The gateway. Default: the one you logged in to, else {DEFAULT_URL}.",
        show_default=False,
    ),
]
AuthTimeout = Annotated[
    float, typer.Option("--timeout", min=1, max=600, help="Seconds to wait for an answer.")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]
Email = Annotated[str, typer.Argument(help="Your email address.", show_default=False)]


def _fail(error: CliError) -> NoReturn:
    sys.stderr.write(error_line(error.message) + "\n")
    raise typer.Exit(int(error.code))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except CliError as error:
        _fail(error)


def _note(message: str) -> None:
    # Status goes to stderr: stdout is for data a script reads.
    sys.stderr.write(message + "\n")


def _check_email(email: str) -> str:
    email = email.strip()
    if not 3 <= len(email) <= 320 or "@" not in email:
        _fail(CliError(ExitCode.USAGE, f"not an email address: {email[:80]!r}"))
    return email


def _password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline(MAX_PASSWORD_CHARS + 2).rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    if not password:
        _fail(CliError(ExitCode.USAGE, "the password is empty"))
    if len(password) > MAX_PASSWORD_CHARS:
        _fail(CliError(ExitCode.USAGE, f"the password is longer than {MAX_PASSWORD_CHARS} characters"))
    return password


def _logged_in(store: TokenStore, url: str | None) -> tuple[SavedLogin, str]:
    """The saved login and the gateway to use it with: `url` when given, else the one that
    issued it. The token is never sent to another gateway than the one it came from."""
    login = store.require()
    if url is not None and url != login.url:
        raise CliError(
            ExitCode.AUTH,
            f"the saved login is for {login.url}, not {url}: run `ocrmesh login --url {url} EMAIL`",
        )
    return login, login.url


@app.command()
def register(
    email: Email,
    name: Annotated[
        str, typer.Option("--name", help="Your name, as the mails address you.", show_default=False)
    ],
    password_stdin: PasswordStdin = False,
    url: UrlOption = None,
    timeout: AuthTimeout = 30.0,
) -> None:
    """Create an account; a verification code is mailed to EMAIL."""
    email = _check_email(email)
    name = name.strip()
    if not 1 <= len(name) <= 200:
        _fail(CliError(ExitCode.USAGE, "the name must have 1 to 200 characters"))
    password = _password(password_stdin, confirm=True)

    async def call() -> str:
        async with Gateway(url or DEFAULT_URL, timeout=timeout) as gateway:
            return await gateway.register(name, email, password)

    detail = _run(call())
    _note(f"{detail}; then run: ocrmesh verify {email} CODE")


@app.command()
def verify(
    email: Email,
    code: Annotated[str, typer.Argument(help="The code from the mail.", show_default=False)],
    url: UrlOption = None,
    timeout: AuthTimeout = 30.0,
) -> None:
    """Verify EMAIL with the CODE that was mailed to it."""
    email = _check_email(email)
    code = code.strip()
    if not 1 <= len(code) <= 32:
        _fail(CliError(ExitCode.USAGE, "the code must have 1 to 32 characters"))

    async def call() -> User:
        async with Gateway(url or DEFAULT_URL, timeout=timeout) as gateway:
            return await gateway.verify(email, code)

    user = _run(call())
    _note(f"{user.email} verified; now run: ocrmesh login {user.email}")


@app.command()
def login(
    email: Email,
    password_stdin: PasswordStdin = False,
    url: UrlOption = None,
    timeout: AuthTimeout = 30.0,
) -> None:
    """Log in; the token is kept in your config directory (readable by you only)."""
    email = _check_email(email)
    password = _password(password_stdin, confirm=False)
    gateway_url = url or DEFAULT_URL

    async def call() -> SavedLogin:
        async with Gateway(gateway_url, timeout=timeout) as gateway:
            token = await gateway.login(email, password)
        expires_at = time.time() + token.expires_in
        return SavedLogin(gateway_url, email, token.access_token, expires_at)

    saved = _run(call())
    path = TokenStore().save(saved)
    minutes = max(0, round((saved.expires_at - time.time()) / 60))
    _note(f"logged in as {email} at {gateway_url} for {minutes} min (token in {path})")


@app.command()
def me(
    json_output: Annotated[bool, typer.Option("--json", help="The user as a JSON object.")] = False,
    url: UrlOption = None,
    timeout: AuthTimeout = 30.0,
) -> None:
    """Show the user you are logged in as."""

    async def call() -> User:
        saved, gateway_url = _logged_in(TokenStore(), url)
        async with Gateway(gateway_url, timeout=timeout) as gateway:
            return await gateway.me(saved.access_token)

    user = _run(call())
    if json_output:
        sys.stdout.write(user.model_dump_json() + "\n")
        return
    verified = "yes" if user.is_verified else "no"
    sys.stdout.write(f"{user.name} <{user.email}>\nid: {user.id}\nverified: {verified}\n")
    if user.created_at:
        sys.stdout.write(f"created: {user.created_at}\n")


@app.command()
def logout(timeout: AuthTimeout = 30.0) -> None:
    """Revoke the saved token at the gateway that issued it, and forget it."""
    store = TokenStore()

    async def call() -> str:
        saved = store.load()
        if saved is None:
            return "not logged in"
        try:
            async with Gateway(saved.url, timeout=timeout) as gateway:
                await gateway.logout(saved.access_token)
        except CliError as error:
            if error.code != ExitCode.AUTH:
                raise  # keep the token: the revocation did not happen; run logout again
        store.clear()
        return f"logged out {saved.email}"

    _note(_run(call()))


@app.command()
def ocr(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FILE",
            help="Images, multi-page TIFFs or PDFs to read.",
            show_default=False,
        ),
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="Every event as NDJSON, each with its `file`.")
    ] = False,
    text_output: Annotated[bool, typer.Option("--text", help="Only the text, a line per line.")] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, max=MAX_CONCURRENCY, help="Files in flight at once.")
    ] = 2,
    use_grpc: Annotated[
        bool, typer.Option("--grpc", help="Call ocr_svc directly (internal callers); TLS from GRPC_TLS_*.")
    ] = False,
    ocr_addr: Annotated[
        str, typer.Option("--ocr-addr", envvar="OCR_ADDR", help="ocr_svc's address, for --grpc.")
    ] = DEFAULT_OCR_ADDR,
    url: UrlOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, max=3600, help="Seconds each file may take.")
    ] = 300.0,
    lang: Annotated[
        str,
        typer.Option(
            "--lang",
            "-l",
            help="The documents' languages, ISO 639-1 codes: `vi,en`. Default: English. "
            "GET /ocr/languages lists what the deployment reads.",
            show_default=False,
        ),
    ] = "",
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="Save a document instead of printing lines: pdf (searchable PDF), hocr, alto, txt or "
            "json (the gateway's whole result). To -o FILE (stdout without it; a directory with "
            "several files).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where --format's file goes: a file, or a directory for several FILEs.",
            show_default=False,
        ),
    ] = None,
    force_ocr: Annotated[
        bool,
        typer.Option("--force-ocr", help="OCR every page, even a PDF page that has its own text layer."),
    ] = False,
) -> None:
    """Read the text in each FILE (images, multi-page TIFFs, PDFs), printing lines as they
    are recognised, page by page; or, with --format, save each as a searchable PDF, hOCR,
    ALTO, text or JSON file.

    Exit status: the worst of the files' (unavailable 5, auth 3, failure 1, rejected 4).
    """
    if json_output and text_output:
        raise typer.BadParameter("--json and --text exclude each other")
    if output_format is not None:
        output_format = output_format.strip().lower()
        if output_format not in FORMATS:
            raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
        if json_output or text_output:
            raise typer.BadParameter(
                "--format saves a file; --json and --text print events", param_hint="--format"
            )
        if use_grpc and output_format == "json":
            raise typer.BadParameter(
                "json is the gateway's result; with --grpc use --json (the events)", param_hint="--format"
            )
    elif output is not None:
        raise typer.BadParameter("-o saves the file --format names: add --format", param_hint="--output")
    if len(files) > MAX_FILES:
        raise typer.BadParameter(f"at most {MAX_FILES} files at once", param_hint="FILE...")
    if not 1 <= len(ocr_addr.strip()) <= 1024:
        raise typer.BadParameter("give host:port", param_hint="--ocr-addr")
    try:
        languages = parse_language_list(lang)
    except InvalidLanguages as exc:
        raise typer.BadParameter(str(exc), param_hint="--lang") from None

    if output_format is not None:
        _render_documents(
            files, output_format, output, languages, force_ocr, use_grpc, ocr_addr.strip(), url, timeout
        )
        return

    printed: OcrOutput
    if json_output:
        printed = JsonOutput()
    elif text_output:
        printed = TextOutput(several=len(files) > 1)
    else:
        printed = RichOutput(total=len(files), progress=len(files) > 1 and sys.stderr.isatty())

    async def run() -> ExitCode:
        store = TokenStore()
        if use_grpc:
            from ocrmesh_cli.grpc_ocr import GrpcOcr  # grpc's runtime only for --grpc

            saved = store.require()
            async with GrpcOcr(
                ocr_addr.strip(),
                saved.access_token,
                timeout=timeout,
                max_image_bytes=MAX_IMAGE_BYTES,
                tls=GrpcTls.from_env(),
            ) as direct:

                def recognize_direct(data: bytes, filename: str) -> AsyncGenerator[OcrEvent, None]:
                    return direct.recognize(data, filename, languages, force_ocr=force_ocr)

                return await _recognize(files, recognize_direct, printed, concurrency, timeout)
        saved, gateway_url = _logged_in(store, url)
        async with Gateway(gateway_url, timeout=timeout, max_connections=concurrency) as gateway:

            def recognize(data: bytes, filename: str) -> AsyncGenerator[OcrEvent, None]:
                return gateway.recognize(saved.access_token, data, filename, languages, force_ocr=force_ocr)

            return await _recognize(files, recognize, printed, concurrency, timeout)

    code = _run(run())
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _render_documents(
    files: list[Path],
    output_format: str,
    output: Path | None,
    languages: tuple[str, ...],
    force_ocr: bool,
    use_grpc: bool,
    ocr_addr: str,
    url: str | None,
    timeout: float,
) -> None:
    """`ocrmesh ocr --format ...`: each file rendered and saved (ocrmesh_cli.documents)."""
    try:
        chosen = destinations(files, output, output_format, stdout_is_tty=sys.stdout.isatty())
    except CliError as error:
        _fail(error)

    async def run() -> ExitCode:
        store = TokenStore()
        if use_grpc:
            from ocrmesh_cli.grpc_ocr import GrpcOcr  # grpc's runtime only for --grpc

            saved = store.require()
            async with GrpcOcr(
                ocr_addr,
                saved.access_token,
                timeout=timeout,
                max_image_bytes=MAX_IMAGE_BYTES,
                tls=GrpcTls.from_env(),
            ) as direct:

                async def render_direct(data: bytes, filename: str, sink: BinaryIO) -> Rendered:
                    return await direct.render(
                        data, filename, output_format, sink, languages, force_ocr=force_ocr
                    )

                return await _render(chosen, render_direct, timeout)
        saved, gateway_url = _logged_in(store, url)
        async with Gateway(gateway_url, timeout=timeout) as gateway:

            async def render(data: bytes, filename: str, sink: BinaryIO) -> Rendered:
                return await gateway.render(
                    saved.access_token, data, filename, output_format, sink, languages, force_ocr=force_ocr
                )

            return await _render(chosen, render, timeout)

    code = _run(run())
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


async def _render(chosen: list[Destination], render: Renderer, seconds: float) -> ExitCode:
    return await render_files(chosen, render, read_image, seconds=seconds, note=_note)


async def _recognize(
    files: list[Path], recognize: Recognizer, output: OcrOutput, concurrency: int, seconds: float
) -> ExitCode:
    with output:
        return await recognize_files(files, recognize, output, concurrency=concurrency, seconds=seconds)


def main() -> None:
    """The `ocrmesh` console script."""
    try:
        app()
    except BrokenPipeError:
        # `ocrmesh ocr page.png | head -1`: the reader left; that is not a failure to report.
        sys.stderr.close()
        raise SystemExit(0) from None
