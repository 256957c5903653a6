"""The tutorial's auth service, reduced to what `GET /auth/me` needs:
`uvicorn bench.baseline.auth_service:app`.

As in the tutorial, the route is `async def` but its database query is synchronous, so one
request at a time holds the event loop while it waits for PostgreSQL.
"""

from __future__ import annotations

from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel
from sqlalchemy import create_engine, text

from bench.baseline.config import decode_token, env

app = FastAPI(title="baseline auth service")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/token")
# The same table auth_svc keeps its users in, so both designs look up the same row.
engine = create_engine(env("DATABASE_URL"), pool_pre_ping=False)


class User(BaseModel):
    id: str
    name: str
    email: str
    is_verified: bool


@app.get("/check_api")
async def check_api() -> dict[str, str]:
    return {"status": "Connected to API Successfully"}


@app.get("/api/users/me")
async def get_user(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    try:
        claims = decode_token(token)
    except jwt.InvalidTokenError:
        raise HTTPException(status_code=401, detail="Invalid Email or Password") from None
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT id, name, email, is_verified FROM users WHERE id = CAST(:id AS uuid)"),
            {"id": str(claims["sub"])},
        ).one_or_none()
    if row is None:
        raise HTTPException(status_code=401, detail="Invalid Email or Password")
    return User(id=str(row.id), name=row.name, email=row.email, is_verified=row.is_verified)
