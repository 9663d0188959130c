"""Figures of the network and the per-appointment export, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from visio.api import codec
from visio.api.context import caller
from visio.api.problems import language_of
from visio.contract import bodies as api
from visio.domain.figures import METRICS
from visio.domain.kinds import Status
from visio.keys import database_key
from visio.services import figures as service

CSV = "text/csv"


def wants_csv(request: web.Request, format_: str | None) -> bool:
    """``?format=csv``, or ``Accept: text/csv`` without ``?format=json``."""
    if format_ is not None:
        return format_ == "csv"
    return CSV in request.headers.get("Accept", "")


def _cell(value: Any, sep: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # With ';' (French spreadsheets) the decimal separator is a comma.
        text = repr(value)
        return text.replace(".", ",") if sep == ";" else text
    return str(value)


def csv_response(header: Sequence[str], rows: Sequence[Sequence[Any]], *, sep: str,
                 filename: str) -> web.Response:
    """UTF-8 CSV with a header row (a byte order mark so spreadsheets read it as UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v, sep) for v in row])
    return web.Response(body=("\ufeff" + out.getvalue()).encode(), headers={
        "Content-Type": f"{CSV}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"'})


def figure_rows(found: Sequence[service.Figure]) -> list[api.FigureRow]:
    return [api.FigureRow(keys=f.keys, labels=f.labels, **f.values)  # type: ignore[arg-type]
            for f in found]


async def get_figures(request: web.Request) -> web.Response:
    """Counts and rates per group over a period, in the caller's scope."""
    principal = await caller(request)
    query = codec.query(request, api.FiguresQuery)
    groups = service.groups_of(query.group_by)
    found = await service.figures(db=request.app[database_key], principal=principal,
                                  first=query.from_, last=query.to, groups=groups,
                                  language=language_of(request))
    if wants_csv(request, query.format):
        header = [h for g in groups for h in (g, f"{g}_label")] + list(METRICS)
        rows = [[v for g in groups for v in (f.keys[g], f.labels[g])]
                + [f.values[name] for name in METRICS] for f in found]
        return csv_response(header, rows, sep=query.sep or ",",
                            filename=f"figures-{query.from_}-{query.to}.csv")
    return codec.respond(api.Figures(from_=query.from_, to=query.to, group_by=list(groups),
                                     items=figure_rows(found)))


def appointment_row(f: service.AppointmentFacts) -> api.AppointmentFigures:
    call = f.call
    return api.AppointmentFigures(
        id=f.id, site_id=f.site_id, operator_id=f.operator_id, desk_id=f.desk_id,
        theme=f.theme, departement=f.departement, start=f.start, end=f.end,
        booked_at=f.booked_at, first_offered_start=f.first_offered_start,
        status=Status(f.status), cancelled_by=f.cancelled_by,
        reschedule_count=f.reschedule_count,
        call_attempted=call.attempted if call else None,
        call_connected=call.connected if call else None,
        kiosk_joined=call.kiosk_joined if call else None,
        operator_joined=call.operator_joined if call else None,
        seconds_to_connect=call.seconds_to_connect if call else None,
        call_seconds=call.duration_seconds if call else None,
        audio_only=call.audio_only if call else None,
        ended_by_failure=call.ended_by_failure if call else None)


EXPORT_COLUMNS = tuple(api.AppointmentFigures.__struct_fields__)


async def export_appointments(request: web.Request) -> web.Response:
    """Every appointment of the period in scope, without personal data."""
    principal = await caller(request)
    query = codec.query(request, api.ExportQuery)
    facts = await service.appointment_facts(db=request.app[database_key],
                                            principal=principal, first=query.from_,
                                            last=query.to)
    rows = [appointment_row(f) for f in facts]
    if wants_csv(request, query.format):
        return csv_response(
            EXPORT_COLUMNS,
            [[_instant(getattr(r, name)) for name in EXPORT_COLUMNS] for r in rows],
            sep=query.sep or ",", filename=f"appointments-{query.from_}-{query.to}.csv")
    return codec.respond(api.Page(items=rows))


def _instant(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) and not isinstance(value, str) else value
