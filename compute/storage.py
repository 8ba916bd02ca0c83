"""Object storage under any fsspec URL (a local folder, `s3://bucket/prefix`): the filesystem, retries and
one message per failure. Serves the lake's tables (`compute.lake`) and the models read from S3 alike.

S3: the endpoint comes from AWS_ENDPOINT_URL (unset: AWS), credentials from the usual AWS variables.
Transient errors are retried with backoff; a store that stays down fails with `LakeUnavailable` naming the
URL, its endpoint and what was being done. Missing or refused credentials are not retried: they fail at
once with `LakeUnavailable` naming the URL, its endpoint and the variables to set. Credentials never appear
in messages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec


def resolve_lake_url(url: str | None = None) -> str:
    """The lake's base URL: `url`, else $LAKE_URL, else ./lake; local paths made absolute."""
    url = url or os.environ.get("LAKE_URL") or "./lake"
    if "://" in url and not url.startswith("file://"):
        return url.rstrip("/")
    return str(Path(url.removeprefix("file://")).expanduser().resolve())


RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)  # between attempts; then the error is final


class LakeUnavailable(OSError):
    """The lake's store did not answer (after retries), or has no credentials or refused them."""


def endpoint(lake_url: str) -> str:
    """Where a lake's store answers: AWS_ENDPOINT_URL(_S3), AWS S3, or the local filesystem."""
    if lake_url.startswith(("s3://", "s3a://")):
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    return "local filesystem"


def filesystem(lake_url: str) -> fsspec.AbstractFileSystem:
    options = {}
    if lake_url.startswith(("s3://", "s3a://")):
        options = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60,
                                     "retries": {"max_attempts": 2, "mode": "standard"}}}
        if endpoint(lake_url) != "AWS S3":
            options["endpoint_url"] = endpoint(lake_url)
        if os.environ.get("AWS_ACCESS_KEY_ID"):  # explicit, so changed keys give another (cached) filesystem
            options.update(key=os.environ["AWS_ACCESS_KEY_ID"], secret=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                           token=os.environ.get("AWS_SESSION_TOKEN"))
    fs, _ = fsspec.core.url_to_fs(lake_url, **options)
    return fs


def redact(text: str) -> str:
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"):
        if value := os.environ.get(var):
            text = text.replace(value, "***")
    return " ".join(text.split())  # one line


CREDENTIALS = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys, "
               "AWS_ENDPOINT_URL for a store other than AWS S3); for the local SeaweedFS, `make s3-up` writes "
               "them to infra/s3.env: set -a; . infra/s3.env; set +a")

# S3 error codes of a request the store refused as unauthenticated or unauthorised: no retry heals them
REFUSED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "AuthorizationHeaderMalformed", "ExpiredToken",
           "InvalidAccessKeyId", "InvalidSecurity", "InvalidToken", "RequestTimeTooSkewed", "SignatureDoesNotMatch",
           "TokenRefreshRequired", "403"}


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError, or of the one s3fs translated into `exc`."""
    for e in (exc, exc.__cause__):
        if isinstance(response := getattr(e, "response", None), dict):
            return response.get("Error", {}).get("Code")
    return None


def _where(lake_url: str) -> str:
    return f"the lake {resolve_lake_url(lake_url)} (endpoint {endpoint(lake_url)})"


@contextmanager
def store_errors(lake_url: str | None, what: str) -> Iterator[None]:
    """Raise what a remote lake's store raises inside the block, outside `with_retries` (DuckDB's views reach
    it through `filesystem`), as the lake's own `LakeUnavailable` when it is one: credentials missing or
    refused, the store unreachable. Anything else, and local lakes' errors, pass unchanged."""
    lake_url = resolve_lake_url(lake_url)
    try:
        yield
    except LakeUnavailable:
        raise
    except Exception as e:
        if "://" not in lake_url:
            raise
        from botocore.exceptions import BotoCoreError

        if (error := _refusal(lake_url, what, e)) is not None:
            raise error from None
        if _transient(e) and isinstance(e, BotoCoreError):
            raise _unreachable(lake_url, what, e) from None
        raise


def _refusal(lake_url: str, what: str, exc: BaseException) -> LakeUnavailable | None:
    """Credentials missing, or refused by the store: no retry heals these."""
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):  # raised before any request is sent
        which = "incomplete" if isinstance(exc, PartialCredentialsError) else "no"
        return LakeUnavailable(f"{which} credentials for {_where(lake_url)} while {what} "
                               f"({type(exc).__name__}: {redact(str(exc))}): {CREDENTIALS}")
    code = _s3_code(exc)  # a local PermissionError has none
    if code in REFUSED or (code and isinstance(exc, PermissionError)):
        return LakeUnavailable(f"{_where(lake_url)} refused {what} ({code}: {redact(str(exc))}): check the "
                               f"credentials and the bucket's policy; {CREDENTIALS}")
    return None


def _unreachable(lake_url: str, what: str, exc: BaseException, attempts: int = 1) -> LakeUnavailable:
    return LakeUnavailable(
        f"{_where(lake_url)} did not answer while {what}" + (f", after {attempts} attempts" if attempts > 1 else "")
        + f" ({type(exc).__name__}: {redact(str(exc))}). Start it (make s3-up for the local SeaweedFS) or check "
        "AWS_ENDPOINT_URL and LAKE_URL; what was already written is unchanged.")


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: connection trouble and server errors, not missing files or refusals."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    return isinstance(exc, (OSError, ConnectionError, TimeoutError)) or "Connect" in type(exc).__name__ \
        or "Endpoint" in type(exc).__name__


def with_retries(lake_url: str | None, what: str, action: Callable):
    """`action()`, retried with backoff on transient errors of a remote store; final errors (the store still
    down, credentials missing or refused) are `LakeUnavailable` naming the lake and `what`. Local paths get
    one attempt and their own errors."""
    lake_url = resolve_lake_url(lake_url)
    if "://" not in lake_url:
        return action()
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
        try:
            return action()
        except Exception as e:
            if (refused := _refusal(lake_url, what, e)) is not None:
                raise refused from None
            if not _transient(e):
                raise
            if delay is None:
                raise _unreachable(lake_url, what, e, attempt + 1) from None
            time.sleep(delay)
