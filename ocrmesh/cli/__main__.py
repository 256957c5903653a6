"""`python -m ocrmesh.cli`: the same as the `ocrmesh` console script."""

from ocrmesh.cli.app import main

main()
