"""The gRPC transport: grpc.aio server with reflection, health checking and token auth.

The standard grpc.health.v1 service reports NOT_SERVING while the default model
loads and SERVING once it is ready, for "" and for the Worker service. With a
WORKER_TOKEN every call must carry `authorization: Bearer <token>` metadata,
except health checks (load balancers and probes cannot send metadata, and the
answer reveals nothing).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from python_worker.proto import worker_pb2 as pb
from python_worker.proto import worker_pb2_grpc

log = logging.getLogger(__name__)

WORKER_SERVICE = pb.DESCRIPTOR.services_by_name["Worker"].full_name
_HEALTH_PREFIX = f"/{health_pb2.DESCRIPTOR.services_by_name['Health'].full_name}/"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class BindError(RuntimeError):
    """The gRPC port could not be bound."""


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_HEALTH_PREFIX):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        presented = metadata.get("authorization", "")
        if isinstance(presented, str):
            presented = presented.encode()
        if hmac.compare_digest(presented, self._expected):  # constant time: no token oracle
            return handler
        return _deny(handler)


def _deny(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that fails with UNAUTHENTICATED."""

    async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token: send 'authorization: Bearer <WORKER_TOKEN>'"
        )

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)


class GrpcServer:
    def __init__(self, servicer: Any, *, host: str, port: int, token: str | None) -> None:
        interceptors = [TokenAuthInterceptor(token)] if token else []
        # No SO_REUSEPORT: a second worker on the same port must fail to start,
        # not silently share the port with the first.
        self.server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
        self.health = health.aio.HealthServicer()
        worker_pb2_grpc.add_WorkerServicer_to_server(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (WORKER_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        self.host = host
        self.requested_port = port
        self.port: int | None = None

    async def start(self, ready: bool) -> int:
        """Bind and start; returns the bound port (a free one when 0 was asked)."""
        await self.set_ready(ready)
        address = f"[{self.host}]:{self.requested_port}" if ":" in self.host else f"{self.host}:{self.requested_port}"
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise BindError(f"could not bind gRPC to {address} ({exc}); set GRPC_PORT or use --no-grpc") from exc
        if self.port == 0:  # older grpc reports failure as port 0
            raise BindError(f"could not bind gRPC to {address}; set GRPC_PORT or use --no-grpc")
        await self.server.start()
        # Machine-readable: tests and tools with GRPC_PORT=0 parse this line.
        log.info("grpc listening on %s:%d", self.host, self.port)
        return self.port

    async def set_ready(self, ready: bool) -> None:
        status = _SERVING if ready else _NOT_SERVING
        await self.health.set("", status)
        await self.health.set(WORKER_SERVICE, status)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
