"""Create the database DATABASE_URL names when it does not exist (`make up` runs this).

    .venv/bin/python scripts/create_db.py            # uses DATABASE_URL or auth_svc's default
    .venv/bin/python scripts/create_db.py --url postgresql+psycopg2://postgres@host/db

Exit 0 when the database exists afterwards, 1 when the server cannot be reached or refuses.
"""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy.exc import SQLAlchemyError

from auth_svc.db import ensure_database
from ocrmesh.rules.endpoints import DEFAULT_DATABASE_URL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    args = parser.parse_args(argv)
    try:
        created = ensure_database(args.url)
    except (SQLAlchemyError, ValueError) as exc:
        sys.stderr.write(f"create_db: cannot ensure the database: {str(exc).splitlines()[0]}\n")
        return 1
    sys.stdout.write("create_db: database created\n" if created else "create_db: database exists\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
