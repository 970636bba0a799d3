"""The requests panel of an interval's page: pending requests with their approvals, and the
buttons that request an override or a rollback and approve or reject a request, each with its
reason. Pure HTML (and a few lines of script) from the data :func:`~pipelines.airflow.ui.governed.panel`
gathers; nothing here imports Airflow or FastAPI.

The forms post JSON to the governed routes (``/lockstep/api/pipelines/{dag_id}/requests``,
``.../requests/{id}/approve``) with the UI's session token (the api-server's ``_token``
cookie, sent by the browser on a same-origin ``fetch``): the routes take the user from it, and
enforce the spec's governance whatever the page shows. A button is shown only to who may use it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pipelines.airflow.ui.pages import esc

__all__ = ["render_requests"]

#: posts a form's fields as JSON (a button's name=value too: reject=true), reloads on success,
#: shows the route's refusal (its ``detail``) beside the form otherwise
SCRIPT = """<script>
document.querySelectorAll('form.lockstep-action').forEach(function (form) {
  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    var body = {};
    new FormData(form).forEach(function (v, k) { body[k] = v; });
    var button = event.submitter;
    if (button && button.name) { body[button.name] = button.value === 'true' ? true : button.value; }
    var out = form.querySelector('.result');
    out.textContent = 'sending ...'; out.className = 'result muted';
    var r = await fetch(form.getAttribute('action'), {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
    if (r.ok) { window.location.reload(); return; }
    var text = await r.text();
    try { text = JSON.parse(text).detail || text; } catch (e) {}
    out.textContent = r.status + ': ' + (typeof text === 'string' ? text : JSON.stringify(text));
    out.className = 'result bad';
  });
});
</script>"""


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if hasattr(value, "strftime") else esc(str(value or "-"))


def _reason_input(placeholder: str) -> str:
    return (f"<input name=reason required minlength=3 size=40 placeholder='{esc(placeholder, quote=True)}'>")


def _request_form(url: str, fields: dict[str, str], label: str, css: str, placeholder: str) -> str:
    hidden = "".join(f"<input type=hidden name='{esc(k)}' value='{esc(v, quote=True)}'>" for k, v in fields.items())
    return (f"<form class='lockstep-action {css}' method=post action='{esc(url, quote=True)}'>{hidden}"
            f"{_reason_input(placeholder)} <button type=submit>{esc(label)}</button> <span class=result></span></form>")


def render_requests(base: str, panel: dict[str, Any]) -> str:
    """The requests section: ``panel`` is ``{"pipeline", "interval", "approvals", "requests",
    "override", "rollback", "me"}`` (:func:`~pipelines.airflow.ui.governed.panel`)."""
    dag_id = panel["pipeline"]
    url = f"{base}/api/pipelines/{quote(dag_id)}/requests"
    out = [f"<h2>requests</h2><p class=muted>An override or a rollback takes effect with {panel['approvals']} "
           "approval(s) by other people holding <code>approve</code> in every region it affects; you are "
           f"<b class=me>{esc(panel['me'])}</b>.</p>"]
    if panel["override"]:
        o = panel["override"]
        out.append(f"<p>blocked generation <code>{esc(o['generation'])}</code> (affects "
                   f"{esc(', '.join(o['regions']))}):</p>"
                   + _request_form(url, {"action": "override", "interval": panel["interval"],
                                         "generation": o["generation"]},
                                   "Request override", "request-override", "why the block may be overridden"))
    if panel["rollback"]:
        out.append(f"<p>re-instate this interval's certified generation <code>{esc(panel['rollback'])}</code> "
                   "(affects every region):</p>"
                   + _request_form(url, {"action": "rollback", "to": panel["rollback"]},
                                   "Request rollback", "request-rollback", "why roll back to this generation"))
    rows = []
    for r in panel["requests"]:
        approvals = "<br>".join(f"{esc(a['who'])}: {esc(a['reason'])}" for a in r["approvals"]) or "-"
        if r.get("rejection"):
            approvals += f"<br><span class=bad>rejected by {esc(r['rejection']['who'])}: {esc(r['rejection']['reason'])}</span>"
        act = ""
        if r["state"] == "pending" and r["can_approve"]:
            act = (f"<form class='lockstep-action approve' method=post "
                   f"action='{esc(url, quote=True)}/{quote(r['request_id'])}/approve'>{_reason_input('your reason')} "
                   "<button type=submit class=approve name=reject value=false>Approve</button> "
                   "<button type=submit class=reject name=reject value=true>Reject</button> "
                   "<span class=result></span></form>")
        rows.append(
            f"<tr class='request {esc(r['state'])}' id='{esc(r['request_id'])}'><td>{esc(r['request_id'])}</td>"
            f"<td>{esc(r['action'])}</td><td class=requester>{esc(r['requester'])}</td><td>{esc(r['reason'])}</td>"
            f"<td>{esc(', '.join(r['regions']))}</td><td class=approvals>{approvals}</td>"
            f"<td>{_when(r['expires_at'])}</td><td class=req-state>{esc(r['state'])}</td><td>{act}</td></tr>")
    out.append("<p class=muted>no requests about this interval</p>" if not rows else
               "<table class=requests><tr><th>request</th><th>action</th><th>requested by</th><th>reason</th>"
               "<th>regions</th><th>approvals</th><th>expires</th><th>state</th><th></th></tr>"
               + "".join(rows) + "</table>")
    return "".join(out) + SCRIPT
