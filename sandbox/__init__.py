"""Local emulation of the four providers, for tests, the demo and benchmarks (not shipped)."""

from sandbox.server import Call, Fault, Request, Response, Sandbox

__all__ = ["Call", "Fault", "Request", "Response", "Sandbox"]
