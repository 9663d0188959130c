"""The audit trail, for administrators (all of it) and coordinators (their départements)."""

from __future__ import annotations

import csv
import io
import json

from aiohttp import web

from visio.access import Principal
from visio.api import codec
from visio.api.context import caller
from visio.contract import bodies as api
from visio.domain.messages import _
from visio.errors import Forbidden, Unprocessable
from visio.keys import database_key
from visio.services import audit

#: The CSV export's columns, in order.
CSV_COLUMNS = ("seq", "at", "actor_kind", "actor_id", "actor_name", "action",
               "target_kind", "target_id", "appointment_id", "site_id", "fields", "detail",
               "request_id", "hash")
_CSV_BATCH = 500


def _query(request: web.Request) -> tuple[api.AuditQuery, audit.Query]:
    principal_query = codec.query(request, api.AuditQuery)
    after = 0
    if principal_query.cursor is not None:
        if not principal_query.cursor.isdigit():
            raise Unprocessable(_("The cursor is not valid; start again from the first page."),
                               extra={"field": "cursor"})
        after = int(principal_query.cursor)
    return principal_query, audit.Query(
        start=principal_query.from_, end=principal_query.to, actor=principal_query.actor,
        target=principal_query.target, after=after, limit=principal_query.limit)


async def _principal(request: web.Request) -> Principal:
    principal = await caller(request)
    if not audit.may_read(principal):
        raise Forbidden(_("Only an administrator or a coordinator can read the audit trail."))
    return principal


def _entry(row: audit.Row) -> api.AuditEntry:
    return api.AuditEntry(
        seq=row.seq, id=row.id, at=row.at, actor_id=row.actor_id, actor_kind=row.actor_kind,
        actor_name=row.actor_name, action=row.action, appointment_id=row.appointment_id,
        target_kind=row.target_kind, target_id=row.target_id, site_id=row.site_id,
        request_id=row.request_id, fields=list(row.fields), detail=row.detail, hash=row.hash)


async def list_entries(request: web.Request) -> web.Response:
    """A page of the audit trail in the order it was written; ``next_cursor`` goes on."""
    principal = await _principal(request)
    declared, query = _query(request)
    rows = await audit.entries(db=request.app[database_key], principal=principal,
                               query=query)
    more = len(rows) == declared.limit
    return codec.respond(api.Page(items=[_entry(r) for r in rows],
                                  next_cursor=str(rows[-1].seq) if rows and more else None))


async def export_csv(request: web.Request) -> web.StreamResponse:
    """The entries matching the filters as CSV (UTF-8, a header row), all pages."""
    principal = await _principal(request)
    declared, query = _query(request)
    return await write_csv(request, principal=principal, query=query, sep=declared.sep)


async def write_csv(request: web.Request, *, principal: Principal, query: audit.Query,
                    sep: str) -> web.StreamResponse:
    """Stream the entries ``query`` selects (every page from its cursor) as CSV."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="audit.csv"'})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    after = query.after
    while True:
        rows = await audit.entries(
            db=request.app[database_key], principal=principal,
            query=audit.Query(start=query.start, end=query.end, actor=query.actor,
                              target=query.target, after=after, limit=_CSV_BATCH))
        for r in rows:
            writer.writerow((r.seq, r.at.isoformat(), r.actor_kind or "", r.actor_id or "",
                             r.actor_name or "", r.action, r.target_kind or "",
                             r.target_id or "", r.appointment_id or "", r.site_id or "",
                             " ".join(r.fields),
                             json.dumps(r.detail, sort_keys=True, ensure_ascii=False),
                             r.request_id or "", r.hash))
        await response.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < _CSV_BATCH:
            break
        after = rows[-1].seq
    await response.write_eof()
    return response
