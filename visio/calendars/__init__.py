"""iCalendar in and out: invitations (iTIP), zones, agenda feeds, imported busy time.

- ``invitations``: the staff member's REQUEST/CANCEL and the usager's PUBLISH;
- ``zones``: VTIMEZONE components written with RRULEs;
- ``feed``: a staff member's or a desk's agenda feed;
- ``fetch``: fetching a staff member's own calendar (SSRF-guarded);
- ``busy``: busy intervals read from a fetched calendar;
- ``expand``: that reading in a child process with a time and memory budget;
- ``jobs``: the scheduler job that fetches them.
"""
