"""Helpers of the acceptance suites: the bridge as its users run it, and upstreams with quirks."""
