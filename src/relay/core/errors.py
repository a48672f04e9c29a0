"""One error hierarchy for the relay.

Every message says what went wrong and what to do next. None carries a request body, a secret,
or raw customer data: messages reach HTTP answers, logs and R2, so they name variables, shops,
order ids and codes only.

* RelayError
  x ConfigError          a shop or global setting is missing or invalid (HTTP 500)
    + UnknownShopError   ``?shop=`` names no configured shop (HTTP 404)
  x RequestError         the inbound request is unusable
    + SignatureError     X-Signature missing, malformed or wrong (HTTP 401)
    + PayloadError       body is not JSON or has no order object (HTTP 400)
    + BodyTooLargeError  body over the size limit (HTTP 413)
    + TooManyAttempts    too many wrong ADMIN_TOKEN attempts from one client (HTTP 429)
  x UpstreamError        Lightspeed or Meta answered badly or not at all
    + LightspeedError
    + MetaError
  x LedgerError          the outbox database refused a statement
  x BudgetExhausted      this invocation's subrequests are spent; the next one continues
"""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""

    http_status = 500


class ConfigError(RelayError):
    http_status = 500


class UnknownShopError(ConfigError):
    http_status = 404


class RequestError(RelayError):
    http_status = 400


class SignatureError(RequestError):
    http_status = 401


class PayloadError(RequestError):
    http_status = 400


class BodyTooLargeError(RequestError):
    http_status = 413


class TooManyAttempts(RequestError):
    """Wrong admin tokens came too often from one client; ``retry_after`` is in seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(RelayError):
    """An upstream call failed. ``retryable`` tells the caller whether a later attempt may succeed."""

    http_status = 502

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class LightspeedError(UpstreamError):
    pass


class MetaError(UpstreamError):
    pass


class LedgerError(RelayError):
    pass


class BudgetExhausted(RelayError):
    """The invocation's subrequest budget is spent; the next invocation continues where this one stopped."""
