"""Alerts: a generation blocked, an operator overrode a block or rolled back, or the
generation in force is older than a consumer allows.

The spec's ``alerts:`` lists targets (:class:`pipelines.spec.AlertTarget`): ``smtp`` or a
generic ``webhook``, each naming an Airflow connection that holds its credentials. Every
alert goes through :class:`LockstepNotifier`, an Airflow notifier (``BaseNotifier``), so the
same object also works as any task's or DAG's ``on_failure_callback``. The gate calls
:func:`after_gate` once it has decided::

    targets:    alerts:
                  - {kind: smtp, conn_id: lockstep_smtp, to: [oncall@example.com]}
                  - {kind: webhook, conn_id: lockstep_hook}          # host: https://hooks.example/…
    connection: AIRFLOW_CONN_LOCKSTEP_SMTP='{"conn_type": "smtp", "host": "mail", "port": 587,
                                             "login": "…", "password": "…", "extra": {"starttls": true}}'

A webhook receives one JSON object: ``{"event", "pipeline", "interval", "subject", "text",
...}`` (``reasons`` for ``blocked``; ``consumers`` for ``stale``; ``who``, ``reason`` and
``generation_id`` for ``override`` and ``rollback``).

Overrides and rollbacks are operators' decisions taken with ``lockstep override`` /
``lockstep rollback``: the CLI records the decision, then alerts at once (:func:`after_decision`)
to every target subscribed to ``blocked`` - whoever hears that a day blocked hears that
someone certified it anyway, or moved the generation in force back, without waiting for the
next run. Connections resolve as in a task (``AIRFLOW_CONN_*``, a secrets backend, the
metadata DB Airflow's configuration points at). A delivery failure does not undo the
decision (it is recorded first), but the command says so and exits non-zero.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier

from pipelines.spec import AlertTarget, PipelineSpec

log = logging.getLogger(__name__)


class AlertError(Exception):
    """An alert could not be delivered (the target refused it or could not be reached)."""


class LockstepNotifier(BaseNotifier):
    """Send one alert to one target; ``subject`` and ``text`` are Jinja-templated."""

    template_fields = ("subject", "text")

    def __init__(self, target: AlertTarget, subject: str, text: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.target = target
        self.subject = subject
        self.text = text
        self.payload = dict(payload or {})

    def notify(self, context: Any) -> None:
        conn = BaseHook.get_connection(self.target.conn_id)
        if self.target.kind == "smtp":
            _send_mail(self.target, conn, self.subject, self.text)
        else:
            _post(conn, {**self.payload, "subject": self.subject, "text": self.text})


def _send_mail(target: AlertTarget, conn: Any, subject: str, text: str) -> None:
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, target.sender, ", ".join(target.to)
    msg.set_content(text)
    extra = conn.extra_dejson or {}
    try:
        with smtplib.SMTP(conn.host or "localhost", int(conn.port or 25), timeout=15) as smtp:
            if extra.get("starttls"):
                smtp.starttls()
            if conn.login:
                smtp.login(conn.login, conn.password or "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertError(f"smtp {target.conn_id} ({conn.host}:{conn.port}): {exc}") from exc


def _post(conn: Any, body: dict[str, Any]) -> None:
    import httpx

    url = conn.host or ""
    if not url.startswith(("http://", "https://")):
        scheme = "https" if (conn.conn_type or "").endswith("s") else "http"
        url = f"{scheme}://{url}" + (f":{conn.port}" if conn.port else "") + (f"/{conn.schema}" if conn.schema else "")
    extra = conn.extra_dejson or {}
    auth = (conn.login, conn.password or "") if conn.login else None
    try:
        response = httpx.post(url, json=body, auth=auth, headers=extra.get("headers") or {}, timeout=15)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise AlertError(f"webhook {conn.conn_id}: {exc}") from exc


def blocked_alert(pipeline: str, interval: str, result: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(subject, text, payload) of a blocked generation."""
    reasons = result.get("reasons") or []
    first = reasons[0] if reasons else {}
    head = f"{first.get('check_id', '?')} {first.get('region', '?')}/{first.get('table', '?')}"
    subject = f"[lockstep] BLOCKED {pipeline} {interval}: {head}"
    lines = [f"{r['check_id']} {r['region']}/{r['table']}: {r['message']}" for r in reasons]
    text = (f"{pipeline} {interval}: generation {result.get('generation_id')} blocked by {len(reasons)} check(s).\n"
            "The last certified generation stays in force.\n\n" + "\n".join(lines)
            + f"\n\nWhy: lockstep explain {pipeline} --date {interval}\n")
    payload = {"event": "blocked", "pipeline": pipeline, "interval": interval,
               "generation_id": result.get("generation_id"),
               "reasons": [{k: r.get(k) for k in ("check_id", "region", "table", "message")} for r in reasons]}
    return subject, text, payload


def stale_consumers(spec: PipelineSpec, *, now: datetime | None = None, root: str | None = None) -> list[dict[str, Any]]:
    """Consumers whose ``max_staleness`` the generation in force exceeds (its interval's end to ``now``)."""
    from pipelines.certify import current_certified

    budgets = [c for c in spec.consumers if c.max_staleness is not None]
    if not budgets:
        return []
    now = now or datetime.now(UTC)
    cur = current_certified(spec, root=root)
    step = spec.interval_length
    age = None if cur is None else now - (cur.interval_start + step)
    return [
        {"consumer": c.name, "max_staleness": str(c.max_staleness), "age": None if age is None else str(age),
         "in_force": None if cur is None else cur.generation_id}
        for c in budgets if c.max_staleness is not None and (age is None or age > c.max_staleness)
    ]


def stale_alert(pipeline: str, stale: list[dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    names = ", ".join(s["consumer"] for s in stale)
    subject = f"[lockstep] STALE {pipeline}: {names} over their staleness budget"
    text = "\n".join(f"{s['consumer']}: generation in force {s['in_force'] or '(none)'} is {s['age'] or 'missing'} "
                     f"old, budget {s['max_staleness']}" for s in stale)
    return subject, text + "\n", {"event": "stale", "pipeline": pipeline, "consumers": stale}


#: the subscription (a spec ``on`` value) each alert event is sent under
SUBSCRIPTION = {"blocked": "blocked", "stale": "stale", "override": "blocked", "rollback": "blocked"}


def decision_alert(decision: Any) -> tuple[str, str, dict[str, Any]]:
    """(subject, text, payload) of an operator's override or rollback (a :class:`pipelines.certify.Decision`)."""
    d = decision
    who = d.who or "someone"
    if d.kind == "override":
        expiry = f" until {d.expires_at:%Y-%m-%d %H:%M} UTC" if d.expires_at else ""
        subject = f"[lockstep] OVERRIDE {d.pipeline} {d.interval} by {who}: {d.reason}"
        head = (f"{who} certified {d.pipeline} {d.interval} (generation {d.generation_id}){expiry} despite "
                f"{len(d.reasons)} blocking check(s).")
        lines = [f"{r.get('check_id')} {r.get('region')}/{r.get('table')}: {r.get('message')}" for r in d.reasons]
    else:
        subject = f"[lockstep] ROLLBACK {d.pipeline} to {d.interval} by {who}: {d.reason}"
        head = (f"{who} re-instated generation {d.generation_id} of {d.pipeline} {d.interval}; intervals "
                "certified after it are no longer in force.")
        lines = []
    text = (head + f"\nReason: {d.reason}\nDecision: {d.decision_id} at {d.decided_at:%Y-%m-%d %H:%M:%S} UTC\n"
            + ("\nOverridden:\n" + "\n".join(lines) + "\n" if lines else "")
            + f"\nHistory: lockstep status {d.pipeline}\n")
    payload = {"event": d.kind, "pipeline": d.pipeline, "interval": d.interval, "generation_id": d.generation_id,
               "decision_id": d.decision_id, "who": d.who, "reason": d.reason, "decided_at": d.decided_at.isoformat(),
               "expires_at": d.expires_at.isoformat() if d.expires_at else None, "target": d.target,
               "reasons": [{k: r.get(k) for k in ("check_id", "region", "table", "message")} for r in d.reasons]}
    return subject, text, payload


def send(spec: PipelineSpec, event: str, subject: str, text: str, payload: dict[str, Any],
         context: Any = None) -> list[str]:
    """Send one alert to every target subscribed to ``event``; the delivery errors (empty: all sent).

    A target that fails does not stop the others; each failure is logged.
    """
    errors = []
    for target in spec.alerts:
        if SUBSCRIPTION.get(event, event) not in target.on:
            continue
        try:
            LockstepNotifier(target, subject, text, {**payload, "interval": payload.get("interval")}).notify(
                context or {})
        except Exception as exc:  # a target's failure must not hide the others' alerts
            log.error("lockstep alert to %s %s failed: %s", target.kind, target.conn_id, exc)
            errors.append(f"{target.kind} {target.conn_id}: {exc}")
    return errors


def after_gate(spec: PipelineSpec, interval: str, result: dict[str, Any], context: Any = None) -> list[str]:
    """What the gate alerts about once it has decided: a block, and consumers left stale."""
    errors: list[str] = []
    if not spec.alerts:
        return errors
    if result.get("status") != "certified":
        errors += send(spec, "blocked", *blocked_alert(spec.name, interval, result), context=context)
    stale = stale_consumers(spec)
    if stale:
        errors += send(spec, "stale", *stale_alert(spec.name, stale), context=context)
    return errors


def after_decision(spec: PipelineSpec, decision: Any) -> list[str]:
    """Alert about an operator's override or rollback, once it is recorded; the delivery errors."""
    if not spec.alerts or decision.kind not in ("override", "rollback"):
        return []
    return send(spec, decision.kind, *decision_alert(decision))
