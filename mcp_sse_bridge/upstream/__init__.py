"""The upstream side: tool arguments -> HTTP request (with auth) -> connection -> SSE events.

Owns requests, auth, the event-stream parser, the reconnecting stream and the sockets under it.
Imports `errors`, `urls` and `manual`; never `calls`, `subscriptions`, `server` or `cli`.
"""
