"""Former home of slot search, kept only as a re-export for importers not yet moved.

Import from ``visio.domain.slot_types``, ``visio.domain.search`` and
``visio.domain.refusals`` (or from ``visio.domain``) instead.
"""

from visio.domain.refusals import Refusal, check_start
from visio.domain.search import nearest, search_slots
from visio.domain.slot_types import ServiceRule, SiteCalendar, Slot, StaffCalendar, Stop

__all__ = [
    "Refusal",
    "ServiceRule",
    "SiteCalendar",
    "Slot",
    "StaffCalendar",
    "Stop",
    "check_start",
    "nearest",
    "search_slots",
]
