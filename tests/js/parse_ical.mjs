// Parse iCalendar text (stdin) with Mozilla's ical.js and print what a client would show,
// as JSON: calendar properties, and per event its UID, SEQUENCE, STATUS, texts, its
// local start (in its TZID, as ical.js computes it from the VTIMEZONE) and UTC instants.
import ICAL from "ical.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8");

const root = new ICAL.Component(ICAL.parse(text));
for (const vtimezone of root.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(vtimezone);
}
const iso = (t) => t.toJSDate().toISOString();
const events = root.getAllSubcomponents("vevent").map((vevent) => {
  const event = new ICAL.Event(vevent);
  const start = vevent.getFirstProperty("dtstart");
  const alarms = vevent.getAllSubcomponents("valarm").map((a) => String(a.getFirstPropertyValue("trigger")));
  return {
    uid: event.uid,
    sequence: event.sequence,
    status: vevent.getFirstPropertyValue("status"),
    summary: event.summary,
    description: event.description,
    location: event.location,
    tzid: start.getParameter("tzid") || null,
    local_start: event.startDate.toString(),
    start_utc: iso(event.startDate),
    end_utc: iso(event.endDate),
    organizer: vevent.getFirstPropertyValue("organizer"),
    attendees: vevent.getAllProperties("attendee").map((p) => p.getFirstValue()),
    alarms,
  };
});
const props = {};
for (const name of ["method", "prodid", "version", "refresh-interval", "x-published-ttl"]) {
  const value = root.getFirstPropertyValue(name);
  props[name] = value === null ? null : String(value);
}
process.stdout.write(JSON.stringify({ props, events }));
