"""Benchmark of auth_svc: `.venv/bin/python -m bench.bench_auth [--quick] [--json PATH]`.

Measures, in one run on this machine:
  1. raw Argon2id verifies/s with the service's parameters, in as many threads as the
     service has workers busy (the baseline: the work a login cannot avoid);
  2. logins/s through gRPC against a real auth_svc (in-process, port 0) on a scratch
     PostgreSQL database, with the same concurrency: DB lookup, verify, token signing;
  3. token verification time (`TokenVerifier.verify`: a token seen first, and one seen
     before, which the verifier remembers until it expires) against bare
     `jwt.decode` with the same key.
The overhead ratio is 2/1: how much of the raw hash rate survives the service around it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import func, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from auth_svc.app import create_app
from auth_svc.keys import generate_key_file
from auth_svc.orm import User
from auth_svc.passwords import Argon2Parameters, PasswordHasher
from auth_svc.settings import AuthSettings
from bench.report import (
    Row,
    add_json_argument,
    emit,
    percentile,
    ratio_higher_is_better,
    ratio_lower_is_better,
)
from harness.scratch import delete_queues, drop_database
from ocrmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.rules.email_events import EmailTopology
from ocrmesh.rules.endpoints import DEFAULT_DATABASE_URL, DEFAULT_RABBITMQ_URL
from ocrmesh.rules.tokens import TOKEN_ALGORITHM, TokenVerifier

PASSWORD = "correct horse battery staple"


def raw_verify_rate(params: Argon2Parameters, concurrency: int, seconds: float) -> tuple[float, list[float]]:
    hasher = PasswordHasher(params)
    stored = hasher.hash(PASSWORD)
    deadline = time.perf_counter() + seconds

    def worker() -> list[float]:
        samples = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            hasher.verify(PASSWORD, stored)
            samples.append(time.perf_counter() - started)
        return samples

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [f.result() for f in [pool.submit(worker) for _ in range(concurrency)]]
    elapsed = time.perf_counter() - started
    samples = [s for r in results for s in r]
    return len(samples) / elapsed, samples


async def service_login_rate(
    stub: auth_pb2_grpc.AuthServiceAsyncStub, emails: list[str], concurrency: int, seconds: float
) -> tuple[float, list[float]]:
    deadline = time.perf_counter() + seconds
    samples: list[float] = []

    async def client(index: int) -> None:
        email = emails[index % len(emails)]
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=30)
            samples.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return len(samples) / (time.perf_counter() - started), samples


async def token_verify_times(
    token: str, verifier: TokenVerifier, key: object, rounds: int
) -> tuple[float, float]:
    """Median microseconds of `verifier.verify(token)` and of a bare `jwt.decode`. With a
    verifier whose token cache is on, every round after the first is a cache hit."""
    await verifier.verify(token)  # fetch and cache the keys first
    ours, bare = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        await verifier.verify(token)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        jwt.decode(token, key, algorithms=[TOKEN_ALGORITHM], audience="ocrmesh")  # type: ignore[arg-type]
        bare.append(time.perf_counter() - started)
    return statistics.median(ours) * 1e6, statistics.median(bare) * 1e6


async def run(args: argparse.Namespace) -> list[Row]:
    run_id = uuid.uuid4().hex[:8]
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    database_url = base.set(database=f"ocrmesh_bench_{run_id}_auth").render_as_string(hide_password=False)
    rabbitmq_url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    topology = EmailTopology.from_prefix(f"bench_{run_id}_auth")
    params = Argon2Parameters()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        generate_key_file(Path(tmp) / "signing.pem")
        settings = AuthSettings(
            database_url=database_url,
            rabbitmq_url=rabbitmq_url,
            email_queue=topology.queue,
            auth_host="127.0.0.1",
            auth_port=0,
            environment="test",
            auth_signing_key_file=Path(tmp) / "signing.pem",
            auth_workers=max(args.concurrency, 2),
            # As many hashing threads as concurrent logins: the benchmark compares with raw
            # Argon2 verifies on that many threads.
            auth_hash_workers=max(args.concurrency, 2),
        )
        server, port = create_app(settings, database_wait_seconds=0)
        await server.start()
        channel = create_channel(f"127.0.0.1:{port}", unary_timeout=30)
        try:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            emails = [f"bench-{i}-{run_id}@example.com" for i in range(args.concurrency)]
            for email in emails:
                await stub.Register(auth_pb2.RegisterRequest(name="Bench", email=email, password=PASSWORD))
            with Session(server.engines[0]) as session, session.begin():
                session.execute(
                    update(User).where(func.lower(User.email).in_(emails)).values(is_verified=True)
                )
            await stub.Login(auth_pb2.LoginRequest(email=emails[0], password=PASSWORD))  # warm-up

            print(f"raw Argon2id verify, {args.concurrency} threads, {args.seconds:.0f}s ...", flush=True)
            raw_rate, raw_samples = await asyncio.to_thread(
                raw_verify_rate, params, args.concurrency, args.seconds
            )
            print(f"logins through gRPC, {args.concurrency} concurrent, {args.seconds:.0f}s ...", flush=True)
            svc_rate, svc_samples = await service_login_rate(stub, emails, args.concurrency, args.seconds)

            token = (await stub.Login(auth_pb2.LoginRequest(email=emails[0], password=PASSWORD))).access_token
            verifier = TokenVerifier.from_channel(channel)
            # cache_size=0: every verify checks the signature, as for a token seen first.
            first_sight = TokenVerifier.from_channel(channel, cache_size=0)
            keys = await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())
            public = load_pem_public_key(keys.keys[0].public_key_pem.encode())
            ours_us, bare_us = await token_verify_times(token, verifier, public, args.token_rounds)
            first_us, bare_first_us = await token_verify_times(token, first_sight, public, args.token_rounds)
        finally:
            await channel.close()
            await server.stop(0)
            drop_database(database_url)
            delete_queues(rabbitmq_url, topology)

    note = (
        f"Argon2id m={params.memory_kib}KiB t={params.time_cost} p={params.parallelism}, "
        f"{os.cpu_count()} cores"
    )
    rows.append(
        Row(
            "auth",
            f"logins/s, {args.concurrency} concurrent",
            svc_rate,
            raw_rate,
            "ops/s",
            ratio_higher_is_better(svc_rate, raw_rate),
            f"baseline: raw verify in threads; {note}",
        )
    )
    rows.append(
        Row(
            "auth",
            "login latency p50",
            percentile(svc_samples, 50) * 1e3,
            percentile(raw_samples, 50) * 1e3,
            "ms",
            ratio_lower_is_better(percentile(svc_samples, 50), percentile(raw_samples, 50)),
            "baseline: one raw verify",
        )
    )
    rows.append(
        Row(
            "auth",
            "token verify, first sight (keys cached)",
            first_us,
            bare_first_us,
            "us",
            ratio_lower_is_better(first_us, bare_first_us),
            "baseline: bare jwt.decode, same key",
        )
    )
    rows.append(
        Row(
            "auth",
            "token verify, seen before (token cached)",
            ours_us,
            bare_us,
            "us",
            ratio_lower_is_better(ours_us, bare_us),
            "baseline: bare jwt.decode, same key; a token is checked in full once",
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="auth_svc logins/s vs raw Argon2, token verify time")
    parser.add_argument("--quick", action="store_true", help="shorter phases (about 15 s in all)")
    parser.add_argument("--seconds", type=float, default=None, help="length of each throughput phase")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--token-rounds", type=int, default=None)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 4.0 if args.quick else 12.0
    if args.token_rounds is None:
        args.token_rounds = 1000 if args.quick else 5000
    emit(asyncio.run(run(args)), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
