"""A local approved-platform (PA) simulator: the REST API of `rest.py`, state in memory.

    python -m invoices.einvoicing.simulator --port 8765 [--host 127.0.0.1] [--threads 8] [--server gunicorn]

Served by gunicorn (one process, `--threads` threads: the gthread worker, kept-alive connections)
since the throughput benchmark showed werkzeug's development server as most of a submission's
time; `--server werkzeug` keeps the development server. One process only: the state is in memory,
and a second worker process would hold a second state (a tracking id deduplicated in one process
would make a second flow in the other), so concurrency comes from threads.

Used by the tests (a subprocess on a free port) and by `make run`'s demo (TARIF_PA_SIMULATOR=1).
It never calls anything but the webhook URL it is given (loopback in practice).

Control endpoints (no auth; the simulator binds loopback):
  POST /_sim/reset
  POST /_sim/rules     {"tracking_id": "*" | "<id>", "outcome": "accept"|"approve"|"reject"|"refuse",
                        "reason_code": "...", "reason_text": "...", "delay_ms": 0,
                        "duplicate_statuses": false, "duplicate_ack": false, "lose_ack": 0}
       accept: 200 Déposée, 202 Reçue, 203 Mise à disposition; approve: + 204, 205;
       reject: 213 Rejetée (platform); refuse: 200, 203, 210 Refusée (buyer) with the reason;
       lose_ack: the next N submissions of this id are recorded but answered 503 (the ack is lost);
       duplicate_ack: every acknowledgement is sent as a duplicate too (a second 200 on resubmission).
  POST /_sim/outage    {"count": N, "mode": "503"|"drop"}   the next N API calls fail
  POST /_sim/directory {"siren": "...", "siret": "", "routing_address": "...", "platform": "...", "name": ""}
  POST /_sim/webhook   {"url": "...", "secret": "..."}   statuses are also pushed there, signed:
       header X-PA-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">
  GET  /_sim/state     flows, submissions per tracking id, pushed deliveries
OAuth2: POST /oauth/token (client credentials, any id/secret but "bad") → bearer token.
Issuer statuses: "212 Encaissée" is refused (400, reasonCode BR-FR-CDV-14) without a positive
`amount`, a `currency` and `collectedByVatRate` MEN blocks (one per rate) adding up to it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.http import parse_options_header
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

VAT_RATE = re.compile(r"\d{1,3}(\.\d{1,2})?")
OUTCOMES = {
    "accept": [("200", "platform"), ("202", "platform"), ("203", "platform")],
    "approve": [("200", "platform"), ("202", "platform"), ("203", "platform"), ("204", "buyer"), ("205", "buyer")],
    "reject": [("213", "platform")],
    "refuse": [("200", "platform"), ("202", "platform"), ("203", "platform"), ("210", "buyer")],
}


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """(text fields, file contents) of a multipart/form-data body; ValueError when it is not one.

    werkzeug's form parser compiles regular expressions for every new boundary, i.e. for every
    request (each client picks a random one): about 70 % of a submission's time in the
    simulator (bench/einvoicing.py). The body is small and whole, so one split does."""
    kind, options = parse_options_header(content_type)
    boundary = options.get("boundary", "")
    if kind != "multipart/form-data" or not boundary:
        raise ValueError("not a multipart/form-data body")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    delimiter = b"--" + boundary.encode("latin-1")
    parts = body.split(delimiter)
    if len(parts) < 3 or not parts[-1].startswith(b"--"):
        raise ValueError("an unterminated multipart body")
    for part in parts[1:-1]:
        if not part.startswith(b"\r\n") or not part.endswith(b"\r\n"):
            raise ValueError("a malformed multipart part")
        head, separator, content = part[2:-2].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart part without headers")
        disposition = ""
        for line in head.decode("utf-8").split("\r\n"):
            name, _colon, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        _kind, params = parse_options_header(disposition)
        if "name" not in params:
            raise ValueError("a multipart part without a name")
        if "filename" in params:
            files[params["name"]] = content
        else:
            fields[params["name"]] = content.decode("utf-8")
    return fields, files


def collected_problem(body: dict[str, Any]) -> str:
    """What BR-FR-CDV-14 finds wrong in a "212 Encaissée" status ("" when nothing): the amount
    collected, its currency, and its split per VAT rate (MDG-43 blocks typed "MEN": rate and
    amount) adding up to it."""
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return "212 needs the amount collected (a positive integer in minor units)"
    if not isinstance(body.get("currency"), str) or len(body["currency"]) != 3:
        return "212 needs the currency of the amount collected"
    parts = body.get("collectedByVatRate")
    if not isinstance(parts, list) or not parts:
        return "212 needs the amount collected per VAT rate (MEN blocks)"
    rates = []
    for part in parts:
        if not isinstance(part, dict) or part.get("typeCode") != "MEN":
            return "each part of the amount collected is a MEN block"
        rate, part_amount = part.get("vatRate"), part.get("amount")
        if not isinstance(rate, str) or not VAT_RATE.fullmatch(rate):
            return f"a MEN block needs a VAT rate (percent, up to two decimals), not {rate!r}"
        if not isinstance(part_amount, int) or isinstance(part_amount, bool):
            return "a MEN block needs an amount in minor units"
        rates.append(rate)
    if len(set(rates)) != len(rates):
        return "one MEN block per VAT rate"
    if sum(part["amount"] for part in parts) != amount:
        return "the MEN blocks must add up to the amount collected"
    return ""


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


class Simulator:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.rules: dict[str, dict[str, Any]] = {}
            self.flows: dict[str, dict[str, Any]] = {}  # flow id → flow
            self.by_tracking: dict[str, str] = {}  # tracking id → flow id
            self.submissions: dict[str, int] = {}  # tracking id → requests received
            self.status_log: list[dict[str, Any]] = []  # what polling returns (cursor = index)
            self.issuer_statuses: list[dict[str, Any]] = []
            self.directory: dict[tuple[str, str], dict[str, Any]] = {}
            self.outage: dict[str, Any] = {"count": 0, "mode": "503"}
            self.webhook: dict[str, str] = {}
            self.deliveries: list[dict[str, Any]] = []
            self.tokens: set[str] = set()

    # --- rules and statuses ------------------------------------------------------------------
    def rule_for(self, tracking_id: str) -> dict[str, Any]:
        rule = {"outcome": "accept", "reason_code": "", "reason_text": "", "delay_ms": 0}
        rule.update(self.rules.get("*", {}))
        rule.update(self.rules.get(tracking_id, {}))
        return rule

    def emit(self, flow: dict[str, Any], rule: dict[str, Any]) -> None:
        base = datetime.now(UTC).replace(microsecond=0)
        statuses = []
        for index, (code, origin) in enumerate(OUTCOMES[rule["outcome"]]):
            final = code in {"210", "213"}
            statuses.append(
                {
                    "statusId": secrets.token_hex(8),
                    "flowId": flow["flowId"],
                    "trackingId": flow["trackingId"],
                    "code": code,
                    "occurredAt": (base + timedelta(seconds=index)).isoformat(),
                    "origin": origin,
                    "reasonCode": rule.get("reason_code", "") if final else "",
                    "reasonText": rule.get("reason_text", "") if final else "",
                }
            )
        copies = 2 if rule.get("duplicate_statuses") else 1
        with self.lock:
            flow["statuses"].extend(statuses)
            for status in statuses:
                self.status_log.extend([status] * copies)
        if self.webhook.get("url"):
            threading.Thread(
                target=self.push, args=(statuses, copies, int(rule.get("delay_ms") or 0)), daemon=True
            ).start()

    def push(self, statuses: list[dict[str, Any]], copies: int, delay_ms: int) -> None:
        if delay_ms:
            time.sleep(delay_ms / 1000)
        url, secret = self.webhook["url"], self.webhook.get("secret", "")
        for status in statuses:
            body = json.dumps({"type": "flow.status", "status": status}).encode()
            for _copy in range(copies):
                request = urllib.request.Request(  # noqa: S310 - the URL is the one the operator configured
                    url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-PA-Signature": sign(secret=secret, timestamp=int(time.time()), body=body),
                    },
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                        outcome = response.status
                except Exception as error:  # noqa: BLE001 - a push failure is recorded, polling recovers
                    outcome = getattr(error, "code", repr(error))
                with self.lock:
                    self.deliveries.append({"statusId": status["statusId"], "code": status["code"], "result": outcome})

    # --- API ---------------------------------------------------------------------------------
    def submit(self, request: Request, *, ereporting: bool) -> Response:
        try:
            fields, files = parse_multipart(request.get_data(), request.headers.get("Content-Type", ""))
            info = json.loads(fields.get("flowInfo") or "{}")
        except ValueError:
            return _json({"reasonCode": "BAD_REQUEST", "message": "a multipart body with flowInfo and file"}, 400)
        tracking_id = str(info.get("trackingId") or "") if isinstance(info, dict) else ""
        content = files.get("file")
        if not tracking_id or content is None:
            return _json({"reasonCode": "MISSING_FIELD", "message": "trackingId and file are required"}, 400)
        if info.get("flowSyntax") not in {"factur-x", "ubl", "cii"}:
            return _json({"reasonCode": "BAD_SYNTAX", "message": "unknown flowSyntax"}, 400)
        with self.lock:
            self.submissions[tracking_id] = self.submissions.get(tracking_id, 0) + 1
            rule = self.rule_for(tracking_id)
            existing = self.by_tracking.get(tracking_id)
            if existing:
                return _json({"flowId": existing, "trackingId": tracking_id, "duplicate": True})
            flow_id = f"FLOW-{len(self.flows) + 1:06d}-{secrets.token_hex(3)}"
            flow = {
                "flowId": flow_id,
                "trackingId": tracking_id,
                "syntax": info.get("flowSyntax"),
                "flowType": info.get("flowType"),
                "name": info.get("name"),
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "ereporting": ereporting,
                "statuses": [],
            }
            self.flows[flow_id] = flow
            self.by_tracking[tracking_id] = flow_id
            lose = int(rule.get("lose_ack") or 0)
            if lose:
                self.rules.setdefault(tracking_id, {})["lose_ack"] = lose - 1
        self.emit(flow, rule)
        if lose:
            return _json({"message": "the acknowledgement was lost"}, 503)
        return _json({"flowId": flow_id, "trackingId": tracking_id, "duplicate": bool(rule.get("duplicate_ack"))}, 201)

    def flow_statuses(self, flow_id: str) -> Response:
        flow = self.flows.get(flow_id)
        if flow is None:
            return _json({"reasonCode": "UNKNOWN_FLOW", "message": "no such flow"}, 404)
        return _json({"statuses": flow["statuses"]})

    def poll(self, request: Request) -> Response:
        cursor = request.args.get("cursor") or "0"
        start = int(cursor) if cursor.isdigit() else 0
        with self.lock:
            page = self.status_log[start : start + 100]
        return _json({"statuses": page, "nextCursor": str(start + len(page))})

    def issuer_status(self, request: Request, flow_id: str) -> Response:
        if flow_id not in self.flows:
            return _json({"reasonCode": "UNKNOWN_FLOW", "message": "no such flow"}, 404)
        body = request.get_json(silent=True) or {}
        if str(body.get("code")) not in {"204", "205", "206", "207", "208", "209", "211", "212"}:
            return _json({"reasonCode": "BAD_STATUS", "message": "this status cannot be sent by the issuer"}, 400)
        if str(body.get("code")) == "212":
            problem = collected_problem(body)
            if problem:
                return _json({"reasonCode": "BR-FR-CDV-14", "message": problem}, 400)
        with self.lock:
            self.issuer_statuses.append({"flowId": flow_id, **body})
            self.flows[flow_id]["statuses"].append(
                {
                    "statusId": secrets.token_hex(8),
                    "flowId": flow_id,
                    "trackingId": self.flows[flow_id]["trackingId"],
                    "code": str(body["code"]),
                    "occurredAt": body.get("occurredAt"),
                    "origin": "issuer",
                    "reasonCode": body.get("reasonCode", ""),
                    "reasonText": body.get("reasonText", ""),
                }
            )
        return _json({"accepted": True}, 202)

    def lookup(self, request: Request) -> Response:
        siren, siret = request.args.get("siren", ""), request.args.get("siret", "")
        if len(siren) != 9 or not siren.isdigit():
            return _json({"reasonCode": "BAD_SIREN", "message": "a SIREN has nine digits"}, 400)
        entry = self.directory.get((siren, siret)) or self.directory.get((siren, ""))
        if entry is None:
            return _json({"reasonCode": "NOT_FOUND", "message": "no entry"}, 404)
        return _json(entry)

    def token(self, request: Request) -> Response:
        auth = request.authorization
        if request.form.get("grant_type") != "client_credentials" or auth is None or auth.password == "bad":
            return _json({"error": "invalid_client", "message": "unknown client"}, 401)
        token = secrets.token_urlsafe(16)
        with self.lock:
            self.tokens.add(token)
        return _json({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    # --- control -----------------------------------------------------------------------------
    def control(self, request: Request, action: str) -> Response:
        body = request.get_json(silent=True) or {}
        with self.lock:
            if action == "reset":
                self.reset()
            elif action == "rules":
                key = str(body.pop("tracking_id", "*"))
                self.rules.setdefault(key, {}).update(body)
            elif action == "outage":
                self.outage = {"count": int(body.get("count", 1)), "mode": str(body.get("mode", "503"))}
            elif action == "directory":
                entry = {
                    "siren": body["siren"],
                    "siret": body.get("siret", ""),
                    "routingAddress": body["routing_address"],
                    "platform": body.get("platform", "Simulated PA"),
                    "name": body.get("name", ""),
                }
                self.directory[(entry["siren"], entry["siret"])] = entry
            elif action == "webhook":
                self.webhook = {"url": str(body["url"]), "secret": str(body.get("secret", ""))}
            elif action == "state":
                return _json(
                    {
                        "flows": list(self.flows.values()),
                        "submissions": self.submissions,
                        "deliveries": self.deliveries,
                        "issuer_statuses": self.issuer_statuses,
                    }
                )
            else:
                raise NotFound()
        return _json({"ok": True})


class SimulatorApp:
    def __init__(self) -> None:
        self.sim = Simulator()
        self.url_map = Map(
            [
                Rule("/oauth/token", endpoint="token", methods=["POST"]),
                Rule("/v1/flows", endpoint="flows", methods=["POST"]),
                Rule("/v1/ereporting", endpoint="ereporting", methods=["POST"]),
                Rule("/v1/flows/<flow_id>/statuses", endpoint="flow_statuses", methods=["GET", "POST"]),
                Rule("/v1/statuses", endpoint="poll", methods=["GET"]),
                Rule("/v1/directory", endpoint="directory", methods=["GET"]),
                Rule("/_sim/<action>", endpoint="control", methods=["GET", "POST"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not self.sim.tokens:  # no client ever asked for a token: an unauthenticated account
            return True
        return header.startswith("Bearer ") and header[7:] in self.sim.tokens

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        endpoint, values = adapter.match()
        if endpoint == "control":
            return self.sim.control(request, values["action"])
        if endpoint == "token":
            return self.sim.token(request)
        with self.sim.lock:
            failing = self.sim.outage["count"] > 0
            if failing:
                self.sim.outage["count"] -= 1
                mode = str(self.sim.outage["mode"])
        if failing:
            if mode == "drop":
                raw = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
                if isinstance(raw, socket.socket):
                    raw.shutdown(socket.SHUT_RDWR)
            return _json({"message": "service unavailable"}, 503)
        if not self._authorized(request):
            return _json({"reasonCode": "UNAUTHORIZED", "message": "invalid or expired token"}, 401)
        if endpoint == "flows":
            return self.sim.submit(request, ereporting=False)
        if endpoint == "ereporting":
            return self.sim.submit(request, ereporting=True)
        if endpoint == "flow_statuses":
            if request.method == "POST":
                return self.sim.issuer_status(request, values["flow_id"])
            return self.sim.flow_statuses(values["flow_id"])
        if endpoint == "poll":
            return self.sim.poll(request)
        return self.sim.lookup(request)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as error:
            response = _json({"message": error.description}, error.code or 500)
        return response(environ, start_response)


def serve_gunicorn(app: SimulatorApp, *, host: str, port: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication  # deferred: only the command line serves

    class _Server(BaseApplication):  # gunicorn ships no type hints: its base is Any to mypy
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": 1,  # the state is in memory: one process (see the module's docstring)
                "worker_class": "gthread",
                "threads": threads,
                "keepalive": 75,  # the sweeper keeps one connection per thread between batches
                "backlog": 2048,
                "timeout": 120,
                "graceful_timeout": 1,  # a test double: nothing to drain on exit
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> SimulatorApp:
            return app

    _Server().run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local e-invoicing platform (PA) simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--threads", type=int, default=8, help="request threads of the one process (gunicorn)")
    parser.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    args = parser.parse_args(argv)
    if args.server == "werkzeug":
        from werkzeug.serving import run_simple  # deferred: only the command line serves

        run_simple(args.host, args.port, SimulatorApp(), threaded=True, use_reloader=False)
        return
    serve_gunicorn(SimulatorApp(), host=args.host, port=args.port, threads=args.threads)


if __name__ == "__main__":
    main()
