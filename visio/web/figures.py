"""The network's figures page: a period, the groups, three charts and the table.

Charts are server-side SVG drawn by pygal (served as images: the page's CSP keeps
inline styles out), each with the same numbers in the accessible table below.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import pygal
from aiohttp import web
from babel.numbers import format_decimal, format_percent
from pygal.style import Style

from visio.access import Principal
from visio.api.figures import EXPORT_COLUMNS, appointment_row, csv_response
from visio.domain import figures as fig
from visio.domain.kinds import Role
from visio.domain.messages import Message, _
from visio.errors import Unprocessable, VisioError
from visio.keys import database_key
from visio.services import figures as service
from visio.web import session
from visio.web.common import local_today, signed_in, text
from visio.web.render import render

# pygal appends a legacy import hook for its map plugins (unused here) that has no
# find_spec: every later import that reaches it warns. Take it out again.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != "pygal"]

#: Twelve weeks up to today, unless the reader asks otherwise.
DEFAULT_DAYS = 84
GROUP_NAMES: dict[str, Message] = {
    "site": _("Site"), "operator": _("Operator"), "theme": _("Theme"),
    "departement": _("Département"), "month": _("Month"), "week": _("Week"),
}
#: The table's columns: (metric, heading, kind) — kinds: count, rate, seconds, hours.
COLUMNS: tuple[tuple[str, Message, str], ...] = (
    ("booked", _("Booked"), "count"),
    ("done", _("Held"), "count"),
    ("no_show", _("Usager absent"), "count"),
    ("cancelled", _("Cancelled"), "count"),
    ("cancelled_by_usager", _("Cancelled by the usager"), "count"),
    ("cancelled_by_agent", _("Cancelled by an agent"), "count"),
    ("cancelled_by_staff", _("Cancelled by the operator"), "count"),
    ("cancelled_by_closure", _("Cancelled by a closure"), "count"),
    ("rescheduled", _("Moved"), "count"),
    ("calls_attempted", _("Calls attempted"), "count"),
    ("calls_connected", _("Calls connected"), "count"),
    ("connection_rate", _("Connection success"), "rate"),
    ("calls_failed", _("Calls ended by a failure"), "count"),
    ("median_seconds_to_connect", _("Median time to connect (s)"), "number"),
    ("median_call_seconds", _("Median call length (s)"), "number"),
    ("audio_only_share", _("Audio only"), "rate"),
    ("median_delay_hours", _("Median delay to the appointment (h)"), "number"),
    ("p90_delay_hours", _("90th percentile delay to the appointment (h)"), "number"),
    ("median_offered_delay_hours", _("Median delay to the first slot offered (h)"),
     "number"),
    ("p90_offered_delay_hours", _("90th percentile delay to the first slot offered (h)"),
     "number"),
)
CHARTS = ("weeks", "connections", "delays")
CHART_STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground="#1a1a1a",
    foreground_strong="#1a1a1a", foreground_subtle="#4a4a4a",
    colors=("#1b6e3a", "#b3261e", "#6b6b6b", "#1f4e9c", "#8a5a00"),
    font_family="system-ui, sans-serif", title_font_size=18, label_font_size=13,
    major_label_font_size=13, legend_font_size=13, value_font_size=12)
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"


async def _reader(request: web.Request) -> Principal:
    """Coordinators, administrators and agents (operator staff have their agenda)."""
    who = await signed_in(request)
    if who.role is Role.STAFF:
        raise web.HTTPSeeOther("/staff/agenda")
    return who


def _day(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise Unprocessable(_("Write dates as YYYY-MM-DD."), extra={"field": "from"}) from err


def _period(request: web.Request) -> tuple[date, date]:
    today = local_today(request)
    last = _day(request.query.get("to"), today)
    first = _day(request.query.get("from"), last - timedelta(days=DEFAULT_DAYS - 1))
    service.period(first, last)
    return first, last


def _groups(request: web.Request) -> tuple[str, ...]:
    chosen = [g for g in fig.GROUPS if g in request.query.getall("group_by", [])]
    return tuple(chosen) or ("site",)


def _cell(request: web.Request, kind: str, value: Any) -> str:
    lang = session.language(request)
    if value is None:
        return "–"
    if kind == "rate":
        return str(format_percent(value, format="#,##0.0 %", locale=lang))
    if kind == "number":
        return str(format_decimal(value, format="#,##0.##", locale=lang))
    return str(format_decimal(value, locale=lang))


async def figures_page(request: web.Request) -> web.Response:
    """Figures over a period, per the chosen groups, with charts and CSV links."""
    who = await _reader(request)
    groups = _groups(request)
    refusal = None
    rows: list[Any] = []
    first = last = local_today(request)
    try:
        first, last = _period(request)
        found = await service.figures(db=request.app[database_key], principal=who,
                                      first=first, last=last, groups=groups,
                                      language=session.language(request))
        rows = [{"labels": [f.labels[g] for g in groups], "keys": f.keys,
                 "cells": [(name, f.values[name], _cell(request, kind, f.values[name]))
                           for name, _heading, kind in COLUMNS]} for f in found]
    except VisioError as err:
        refusal = text(request, err.detail)
    period = {"from": first.isoformat(), "to": last.isoformat()}
    query = urlencode([*period.items(), *(("group_by", g) for g in groups)])
    csv_query = urlencode([*period.items(), ("group_by", ",".join(groups))])
    return render(
        request, "figures.html", who=who, groups=groups,
        group_names={g: text(request, label) for g, label in GROUP_NAMES.items()},
        all_groups=fig.GROUPS, rows=rows, refusal=refusal, period=period,
        columns=[(name, text(request, heading), kind) for name, heading, kind in COLUMNS],
        charts=[(name, f"/network/figures/{name}.svg?{urlencode(period)}",
                 text(request, CHART_TITLES[name])) for name in CHARTS] if not refusal else [],
        csv_links={
            "comma": f"/network/figures.csv?{csv_query}",
            "semicolon": f"/network/figures.csv?{csv_query}&sep=%3B",
            "appointments": f"/network/appointments.csv?{urlencode(period)}&sep=%3B",
        }, query=query)


CHART_TITLES: dict[str, Message] = {
    "weeks": _("Appointments per week, by outcome"),
    "connections": _("Connection success per site (%)"),
    "delays": _("Delay to the first slot per theme (hours)"),
}


async def figures_csv(request: web.Request) -> web.Response:
    """The page's figures as CSV, for the session's reader (the API's columns)."""
    who = await _reader(request)
    first, last = _period(request)
    groups = service.groups_of(request.query.get("group_by", "site"))
    sep = ";" if request.query.get("sep") == ";" else ","
    found = await service.figures(db=request.app[database_key], principal=who, first=first,
                                  last=last, groups=groups,
                                  language=session.language(request))
    header = [h for g in groups for h in (g, f"{g}_label")] + list(fig.METRICS)
    rows = [[v for g in groups for v in (f.keys[g], f.labels[g])]
            + [f.values[name] for name in fig.METRICS] for f in found]
    return csv_response(header, rows, sep=sep, filename=f"figures-{first}-{last}.csv")


async def appointments_csv(request: web.Request) -> web.Response:
    """Each appointment of the period without personal data, as CSV."""
    who = await _reader(request)
    first, last = _period(request)
    sep = ";" if request.query.get("sep") == ";" else ","
    facts = await service.appointment_facts(db=request.app[database_key], principal=who,
                                            first=first, last=last)
    rows = [appointment_row(f) for f in facts]
    return csv_response(
        EXPORT_COLUMNS,
        [[_plain(getattr(r, name)) for name in EXPORT_COLUMNS] for r in rows], sep=sep,
        filename=f"appointments-{first}-{last}.csv")


def _plain(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) and not isinstance(value, str) else value


async def chart(request: web.Request) -> web.Response:
    """One of the page's charts, as SVG."""
    who = await _reader(request)
    name = request.match_info["name"]
    if name not in CHARTS:
        raise web.HTTPNotFound()
    first, last = _period(request)
    lang = session.language(request)
    group = {"weeks": "week", "connections": "site", "delays": "theme"}[name]
    found = await service.figures(db=request.app[database_key], principal=who, first=first,
                                  last=last, groups=(group,), language=lang)
    labels = [f.labels[group] for f in found]
    config: dict[str, Any] = {"js": [], "style": CHART_STYLE, "width": 800, "height": 420,
                              "title": text(request, CHART_TITLES[name]),
                              "x_label_rotation": 30 if len(labels) > 6 else 0,
                              "legend_at_bottom": True, "print_values": False,
                              "no_data_text": text(request, _("No appointment"))}
    drawn: pygal.graph.graph.Graph
    if name == "weeks":
        drawn = pygal.StackedBar(**config)
        for metric, label in (("done", _("Held")), ("no_show", _("Usager absent")),
                              ("cancelled", _("Cancelled")), ("open", _("Not marked"))):
            drawn.add(text(request, label), [f.values[metric] for f in found])
    elif name == "connections":
        drawn = pygal.Bar(range=(0, 100), **config)
        drawn.add(text(request, _("Connection success")),
                  [None if f.values["connection_rate"] is None
                   else round(float(f.values["connection_rate"] or 0) * 100, 1)
                   for f in found])
    else:
        drawn = pygal.Bar(**config)
        drawn.add(text(request, _("Median")),
                  [f.values["median_offered_delay_hours"] for f in found])
        drawn.add(text(request, _("90th percentile")),
                  [f.values["p90_offered_delay_hours"] for f in found])
    drawn.x_labels = labels
    return web.Response(body=drawn.render(), headers={
        "Content-Type": "image/svg+xml", "Cache-Control": "no-store",
        "Content-Security-Policy": SVG_CSP, "X-Content-Type-Options": "nosniff"})
