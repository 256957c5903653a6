"""The tutorial's gateway, reduced to `GET /auth/me` and `POST /ocr`:
`uvicorn bench.baseline.gateway:app`.

`/auth/me` is an `async def` route that makes a blocking HTTP call to the auth service: the
whole event loop waits for it, so concurrent requests are served one after another.
`/ocr` is a sync `def` route (FastAPI runs it in its thread pool) that checks the token
locally and makes a RabbitMQ round trip with a new connection, as the tutorial did.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, File, HTTPException, UploadFile
from fastapi.security import OAuth2PasswordBearer

from bench.baseline.config import HTTP_TIMEOUT_S, decode_token, env
from bench.baseline.rpc_client import OcrRpcClient, ReplyTimeout

app = FastAPI(title="baseline gateway")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")
AUTH_BASE_URL = env("BASELINE_AUTH_URL")


def jwt_validation(token: Annotated[str, Depends(oauth2_scheme)]) -> dict[str, object]:
    try:
        return decode_token(token)
    except jwt.InvalidTokenError:
        raise HTTPException(status_code=401, detail="Invalid JWT token") from None


@app.get("/check_api")
async def check_api() -> dict[str, str]:
    return {"status": "Connected to API Successfully"}


@app.get("/auth/me")
async def me(token: Annotated[str, Depends(oauth2_scheme)]) -> Any:
    request = urllib.request.Request(
        f"{AUTH_BASE_URL}/api/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        # Blocking I/O inside `async def`: the design under test.
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise HTTPException(status_code=exc.code, detail=json.loads(exc.read() or b"null")) from None
    except urllib.error.URLError:
        raise HTTPException(status_code=503, detail="Authentication service is unavailable") from None


@app.post("/ocr")
def ocr(
    file: Annotated[UploadFile, File()], payload: Annotated[dict[str, object], Depends(jwt_validation)]
) -> Any:
    request_json = {
        "user_name": payload["name"],
        "user_email": payload["email"],
        "user_id": payload["sub"],
        "file": base64.b64encode(file.file.read()).decode(),
    }
    ocr_rpc = OcrRpcClient()
    try:
        return ocr_rpc.call(request_json)
    except ReplyTimeout:
        raise HTTPException(status_code=504, detail="the OCR service did not answer in time") from None
    finally:
        ocr_rpc.close()
