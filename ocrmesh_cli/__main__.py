"""`python -m ocrmesh_cli`: the same as the `ocrmesh` console script."""

from ocrmesh_cli.app import main

main()
