"""scanner: verify that a service's endpoints are reachable, directly and through proxies."""

__version__ = "0.1.0"
