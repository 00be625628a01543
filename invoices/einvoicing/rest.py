"""The REST implementation of `PlatformAdapter` (AFNOR XP Z12-013 style API), OAuth2 client credentials.

Routes (relative to the account's base URL; the simulator serves the same ones):
  POST /v1/flows                    multipart: `flowInfo` (JSON) + `file`   → {flowId, trackingId, duplicate}
  GET  /v1/flows/{flowId}/statuses                                          → {statuses: [...]}
  POST /v1/flows/{flowId}/statuses  JSON status sent by the issuer; 212 Encaissée carries `amount`,
                                    `currency` and `collectedByVatRate`: [{typeCode "MEN", vatRate, amount}]
                                    adding up to `amount` (BR-FR-CDV-14), amounts in minor units
  GET  /v1/statuses?cursor=...                                              → {statuses: [...], nextCursor}
  POST /v1/ereporting               multipart like /v1/flows
  GET  /v1/directory?siren=...&siret=...                                    → entry, or 404
Errors: timeouts, refused/dropped connections, 5xx and 429 → PlatformUnavailable (retry);
other 4xx → PlatformRejected with the PA's `reasonCode` and `message`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import requests

from config.types import JsonDict
from invoices.einvoicing.adapters import (
    ORIGINS,
    DirectoryAddress,
    FlowReceipt,
    Origin,
    OutboundFlow,
    OutboundStatus,
    StatusPage,
    StatusReport,
)
from invoices.einvoicing.errors import PlatformRejected, PlatformUnavailable

DEFAULT_TIMEOUT = (3.05, 15.0)  # (connect, read) seconds


@dataclass(frozen=True)
class RestCredentials:
    base_url: str
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""


class _TokenCache:
    """Access tokens per (token URL, client id), renewed a minute before they expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
        if token and token[1] > time.monotonic():
            return token[0]
        return None

    def put(self, key: tuple[str, str], token: str, expires_in: float) -> None:
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(expires_in - 60, 1))

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


_tokens = _TokenCache()


def _reason(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:500]
    if not isinstance(body, dict):
        return "", str(body)[:500]
    return str(body.get("reasonCode") or body.get("code") or ""), str(body.get("message") or body.get("detail") or "")


def _parse_report(item: JsonDict) -> StatusReport:
    origin = str(item.get("origin") or "platform")
    return StatusReport(
        flow_id=str(item["flowId"]),
        tracking_id=str(item.get("trackingId") or ""),
        code=str(item["code"]),
        occurred_at=datetime.fromisoformat(str(item["occurredAt"])),
        origin=cast(Origin, origin if origin in ORIGINS else "platform"),
        reason_code=str(item.get("reasonCode") or ""),
        reason_text=str(item.get("reasonText") or ""),
        raw=dict(item),
    )


class RestPlatformAdapter:
    def __init__(
        self,
        credentials: RestCredentials,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.credentials = credentials
        self.base_url = credentials.base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    # --- transport -------------------------------------------------------------------------
    def _token_key(self) -> tuple[str, str]:
        return (self.credentials.token_url, self.credentials.client_id)

    def _token(self) -> str | None:
        if not self.credentials.token_url:
            return None
        key = self._token_key()
        cached = _tokens.get(key)
        if cached:
            return cached
        try:
            response = self.session.post(
                self.credentials.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self.credentials.client_id, self.credentials.client_secret),
                timeout=self.timeout,
            )
        except requests.RequestException as error:  # timeout, refused, reset: the class, never the text
            raise PlatformUnavailable(
                f"token endpoint: {type(error).__name__}"
            ) from error  # untranslated: transport detail for operators' logs and retries
        if response.status_code >= 500 or response.status_code == 429:
            raise PlatformUnavailable(
                f"token endpoint answered {response.status_code}"
            )  # untranslated: transport detail for operators' logs and retries
        if response.status_code >= 400:
            reason_code, message = _reason(response)
            raise PlatformRejected(  # untranslated: transport detail for operators' logs and retries
                f"token endpoint refused the credentials: {message or response.status_code}",
                reason_code=reason_code or "invalid_client",
                status_code=response.status_code,
            )
        body = response.json()
        token = str(body["access_token"])
        _tokens.put(key, token, float(body.get("expires_in") or 300))
        return token

    def _request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        for attempt in (1, 2):
            token = self._token()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                response = self.session.request(
                    method,
                    f"{self.base_url}{path}",
                    headers=headers,
                    timeout=self.timeout,
                    **kwargs,  # type: ignore[arg-type]
                )
            except requests.RequestException as error:  # timeout, refused, reset, dropped
                raise PlatformUnavailable(
                    f"{method} {path}: {type(error).__name__}"
                ) from error  # untranslated: transport detail for operators' logs and retries
            if response.status_code == 401 and token and attempt == 1:
                _tokens.drop(self._token_key())  # expired or revoked: one fresh token, one more try
                continue
            if response.status_code >= 500 or response.status_code == 429:
                raise PlatformUnavailable(
                    f"{method} {path}: HTTP {response.status_code}"
                )  # untranslated: transport detail for operators' logs and retries
            return response
        return response

    def _checked(self, response: requests.Response) -> requests.Response:
        if response.status_code >= 400:
            reason_code, message = _reason(response)
            raise PlatformRejected(
                message or f"HTTP {response.status_code}",
                reason_code=reason_code,
                status_code=response.status_code,
            )
        return response

    def _json(self, response: requests.Response) -> JsonDict:
        try:
            body = self._checked(response).json()
        except ValueError as error:  # a proxy's HTML page instead of the API's JSON
            raise PlatformUnavailable("the platform answered something that is not JSON") from error
        if not isinstance(body, dict):
            raise PlatformUnavailable("the platform answered an unexpected JSON shape")
        return body

    def _post_flow(self, path: str, flow: OutboundFlow) -> FlowReceipt:
        info = {
            "trackingId": flow.tracking_id,
            "flowSyntax": flow.syntax,
            "flowType": flow.flow_type,
            "name": flow.filename,
        }
        response = self._request(
            "POST",
            path,
            data={"flowInfo": json.dumps(info)},
            files={"file": (flow.filename, flow.content, "application/octet-stream")},
        )
        body = self._json(response)
        return FlowReceipt(
            flow_id=str(body["flowId"]),
            tracking_id=str(body.get("trackingId") or flow.tracking_id),
            duplicate=bool(body.get("duplicate", False)),
        )

    # --- PlatformAdapter ---------------------------------------------------------------------
    def submit_flow(self, *, flow: OutboundFlow) -> FlowReceipt:
        return self._post_flow("/v1/flows", flow)

    def submit_ereporting(self, *, flow: OutboundFlow) -> FlowReceipt:
        return self._post_flow("/v1/ereporting", flow)

    def get_flow_status(self, *, flow_id: str) -> list[StatusReport]:
        body = self._json(self._request("GET", f"/v1/flows/{requests.utils.quote(flow_id, safe='')}/statuses"))
        return [_parse_report(item) for item in body.get("statuses", [])]

    def poll_statuses(self, *, cursor: str) -> StatusPage:
        body = self._json(self._request("GET", "/v1/statuses", params={"cursor": cursor}))
        reports = tuple(_parse_report(item) for item in body.get("statuses", []))
        return StatusPage(reports=reports, next_cursor=str(body.get("nextCursor") or cursor))

    def submit_status(self, *, flow_id: str, status: OutboundStatus) -> None:
        payload: JsonDict = {
            "code": status.code,
            "occurredAt": status.occurred_at.isoformat(),
            "amount": status.amount,
            "currency": status.currency,
            "reasonCode": status.reason_code,
            "reasonText": status.reason_text,
        }
        if status.vat_amounts:
            # BR-FR-CDV-14: the collected amount per VAT rate (MDG-43 blocks, type code "MEN")
            payload["collectedByVatRate"] = [
                {"typeCode": "MEN", "vatRate": part.rate, "amount": part.amount} for part in status.vat_amounts
            ]
        self._checked(
            self._request("POST", f"/v1/flows/{requests.utils.quote(flow_id, safe='')}/statuses", json=payload)
        )

    def lookup_directory(self, *, siren: str, siret: str = "") -> DirectoryAddress | None:
        response = self._request("GET", "/v1/directory", params={"siren": siren, "siret": siret})
        if response.status_code == 404:
            return None
        body = self._json(response)
        return DirectoryAddress(
            siren=str(body.get("siren") or siren),
            siret=str(body.get("siret") or siret),
            routing_address=str(body["routingAddress"]),
            platform=str(body.get("platform") or ""),
            name=str(body.get("name") or ""),
        )
