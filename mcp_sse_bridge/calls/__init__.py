"""Calls: one tool call's control arguments, filters and bounds, and the `Bridge` that runs it.

Owns the library facade (`Bridge`, `Limits`) and the batch a call returns. Imports `manual` and
`upstream`; never `server`, `cli` or `mcp`.
"""
