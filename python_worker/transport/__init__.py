"""The two ways the Worker service is served: gRPC and the Erlang port."""
