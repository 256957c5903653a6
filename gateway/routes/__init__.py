"""The gateway's REST routes: thin translations from HTTP to gRPC calls."""
