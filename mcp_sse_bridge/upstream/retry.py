"""When to try an upstream again after a refused or failed connection, and how long to wait.

One rule for every caller, so that a call's first connection, its reconnects and a background
subscription behave alike (README, "Retries"). `RetryPolicy.wait` answers one question: given
this failure, after this many consecutive failed attempts, how many seconds until the next
attempt? It raises the error to report instead when there must be no next attempt:

- which failures are worth another attempt depends on whether a stream was already established.
  Before, only statuses that say "come back later" (408, 429, 502, 503, 504): a wrong URL, bad
  credentials, a 500 or a server that is down are reported at once, not hidden behind retries.
  After, also a connect error or any 5xx (the server may be restarting);
- a request with a body is retried only on a 429 or 503 before any stream (the upstream says it
  did not process it); a 502, 504 or 408 may come after a gateway forwarded the body;
- the wait is the server's `Retry-After` plus up to 20 % (so that callers refused together do
  not come back together), else the jittered, capped, doubling backoff of reconnects, which
  before any stream starts from at most `FIRST_BACKOFF_MS` (1 s) rather than the manual's
  `retry_timeout` (30 s by default, longer than a call's default 15 s);
- with a `deadline` (a call's), a wait that would not end before it ends the call at once with
  an error saying how long the upstream asked to wait; `max_attempts` bounds consecutive failed
  attempts (a subscription's retry budget; `None`: no bound but the deadline).
"""

from __future__ import annotations

import datetime
import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from ..errors import AuthError, ConnectError, ServerError, UpstreamError

__all__ = [
    "FIRST_BACKOFF_MS",
    "MAX_RETRY_AFTER_S",
    "MIN_BACKOFF_MS",
    "RetryPolicy",
    "backoff",
    "retry_after",
    "retryable",
]

MIN_BACKOFF_MS = 100  # floor of every wait, so `retry: 0` cannot make a busy loop
FIRST_BACKOFF_MS = 1000  # most the backoff starts from before a stream (then 2 s, 4 s, ...)
MAX_BACKOFF_MS = 3_600_000  # no backoff is longer than an hour, whatever the options say
MAX_RETRY_AFTER_S = 3600  # a longer Retry-After is treated as absent (a broken server's word)

COME_BACK_LATER = frozenset({408, 429, 502, 503, 504})  # retried even before any stream
NOT_PROCESSED = frozenset({429, 503})  # a request with a body may be sent again after these
_ONCE_ESTABLISHED = frozenset({408, 429})  # besides connect errors and every 5xx


@dataclass(frozen=True)
class RetryPolicy:
    """The retry rule with its numbers: `retry_ms` is the base delay until the server sends
    `retry:`, `cap_ms` caps the doubled backoff, `max_attempts` bounds consecutive failed
    attempts (None: unbounded, the deadline or the caller's scope ends them)."""

    retry_ms: int = 30000
    cap_ms: int = 30000
    max_attempts: int | None = None

    def wait(
        self,
        error: UpstreamError,
        *,
        failures: int,
        established: bool,
        has_body: bool,
        server_retry_ms: int | None = None,
        deadline: float | None = None,
    ) -> float:
        """Seconds to wait before the next attempt, or raise the error to report.

        `failures` counts consecutive failed attempts, this one included. `deadline` (anyio
        clock) is when the caller stops; None for a caller without one.
        """
        if not retryable(error, established=established, has_body=has_body):
            raise error
        if self.max_attempts is not None and failures >= self.max_attempts:
            raise _with_note(error, f"Gave up after {failures} attempts.")
        asked = error.retry_after
        if asked is not None:
            delay = max(asked, MIN_BACKOFF_MS / 1000) * random.uniform(1.0, 1.2)
        else:
            delay = self.pause(failures, server_retry_ms)
        if deadline is None:
            return delay
        left = deadline - anyio.current_time()
        least = delay if asked is None else asked
        if least >= left:
            raise _too_long(error, least, left, asked is not None)
        return min(delay, left)

    def pause(self, failures: int, server_retry_ms: int | None = None) -> float:
        """The backoff after `failures` consecutive attempts that delivered no event (0 after a
        stream that delivered and dropped): the server's `retry:` or `retry_ms`, doubled per
        failure after the first, capped, jittered."""
        base = self.retry_ms if server_retry_ms is None else server_retry_ms
        return backoff(base, failures - 1, self.cap_ms)


def retryable(error: UpstreamError, *, established: bool, has_body: bool) -> bool:
    """Whether this failure is worth another attempt at all (see the module's docstring)."""
    if has_body:
        return not established and error.status in NOT_PROCESSED
    if established:
        return isinstance(error, ConnectError | ServerError) or error.status in _ONCE_ESTABLISHED
    return not isinstance(error, AuthError) and error.status in COME_BACK_LATER


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The seconds a response's `Retry-After` asks for, or None when absent or unusable.

    Delay-seconds or an HTTP-date (all three of HTTP's formats). A date is measured against the
    response's own `Date` when it has one, so clock skew between the hosts does not count, else
    against `now` (Unix time; by default the local clock). Negative, past, over
    `MAX_RETRY_AFTER_S`, or garbage: None.
    """
    value = headers.get("retry-after", "").strip()
    if value.isdigit() and value.isascii():
        seconds = float(value) if len(value) <= 6 else float(MAX_RETRY_AFTER_S + 1)
    else:
        when = _http_date(value)
        if when is None:
            return None
        reference = _http_date(headers.get("date", ""))
        if reference is None:
            reference = time.time() if now is None else now
        seconds = when - reference
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_S else None


def backoff(retry_ms: int, failures: int, cap_ms: int) -> float:
    """Seconds to wait: `retry_ms` doubled per earlier consecutive failure, capped, +-20 %, and
    never less than `MIN_BACKOFF_MS` (a `retry: 0` server dropping at once would otherwise be
    hammered in a busy loop).

    Clamped to `MAX_BACKOFF_MS` before any float arithmetic, so that no number (a `retry:` of
    10**18, a `retry_timeout` of 10**400 in options built by hand) can overflow.
    """
    cap_ms = max(min(cap_ms, MAX_BACKOFF_MS), MIN_BACKOFF_MS)
    delay = max(min(retry_ms, cap_ms), MIN_BACKOFF_MS)
    delay = min(delay << min(max(failures, 0), 32), cap_ms)
    return max(delay * random.uniform(0.8, 1.2), MIN_BACKOFF_MS) / 1000


def _http_date(value: str) -> float | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime) as Unix time; None if it is not one."""
    if not value or len(value) > 64:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # asctime has no zone; every HTTP-date is in GMT
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _too_long(error: UpstreamError, wait: float, left: float, asked: bool) -> UpstreamError:
    """The call's error when the next attempt cannot come before its deadline."""
    if asked:
        what = f"the upstream asked to wait {wait:g} s"
    else:
        what = f"the next attempt would be in {wait:.1f} s"
    return _with_note(
        error,
        f"Not retried: {what}, more than the {max(left, 0):.1f} s this call has left (call again "
        f"in {math.ceil(wait)} s, or allow the call a longer max_seconds).",
    )


def _with_note(error: UpstreamError, note: str) -> UpstreamError:
    """`error` again, of the same type, message and status, its hint led by `note` on why it
    ends the call (the message ends with the server's own words, kept apart from ours)."""
    return type(error)(
        error.message,
        status=error.status,
        body_excerpt=error.body_excerpt,
        hint=f"{note} {error.hint}" if error.hint else note,
        retry_after=error.retry_after,
    )
