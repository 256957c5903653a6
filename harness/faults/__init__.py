"""The fault suite and the soak run (`make faults`, `make soak`, their short forms in
`make test`): the mesh as processes under steady mixed traffic, real dependencies broken one
after another, and what the clients saw, what was mailed and what recovered, as tables.
docs/reliability.md explains the faults, the targets and the last measured results."""
