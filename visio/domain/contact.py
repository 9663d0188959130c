"""The usager's contact data, checked as the systems that carry messages read it.

An address is what an SMTP server takes as one mailbox (``email-validator``: no display
name, no comment, no quoted local part, no domain literal, exactly one recipient), kept in
its normalised form. A number is a French or Belgian one in E.164; only a mobile gets SMS.
A name is at most ``NAME_MAX`` characters and carries no link, so no message can be made
to carry someone's phishing text. Refusals name the field and never echo the value (the
sentence may reach a log).
"""

from __future__ import annotations

import re
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from visio.domain.messages import Message, _

COUNTRIES = ("FR", "BE")
NAME_MAX = 50
#: A link in a name: a scheme, a web host, an address, or a domain followed by a path.
_LINK = re.compile(r"://|www\.|@|\.[a-z]{2,}/", re.IGNORECASE)


class PhoneType(StrEnum):
    """What a number can receive: an SMS needs a mobile."""

    MOBILE = "mobile"
    FIXED = "fixed"
    OTHER = "other"  # premium-rate, freephone, shared cost, VoIP, pagers…


class Refused(Exception):
    """A contact value that no message could be sent to; ``field`` names it in the body."""

    def __init__(self, field: str, reason: str, message: Message) -> None:
        super().__init__(reason)
        self.field, self.reason, self.message = field, reason, message


def mailbox(address: str, *, field: str = "usager.email") -> str:
    """The address in the normalised form SMTP sends to, or ``Refused``."""
    try:
        checked = validate_email(address, check_deliverability=False,
                                 allow_display_name=False, allow_quoted_local=False,
                                 allow_domain_literal=False, allow_smtputf8=True)
    except EmailNotValidError as err:
        raise Refused(field, "invalid_email", _(
            "This e-mail address cannot receive messages: give one address, without a "
            "name, comment or quotes.")) from err
    return str(checked.normalized)


def cap_key(channel: str, recipient: str) -> str:
    """Who a message really reaches: one key per mailbox or number, for the daily cap."""
    if channel == "sms":
        try:
            return e164(recipient, country="FR")
        except Refused:
            return recipient
    try:
        return mailbox(recipient).lower()
    except Refused:
        return recipient.lower()


def _parse(phone: str, country: str, field: str) -> phonenumbers.PhoneNumber:
    if country not in COUNTRIES:
        named = field + "_country"
        raise Refused(named, "invalid_country", _(
            "The phone number's country must be France (FR) or Belgium (BE)."))
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException as err:
        raise Refused(field, "invalid_phone", _(
            "This phone number cannot be read: check its digits.")) from err
    if not phonenumbers.is_valid_number(number) or \
            phonenumbers.region_code_for_number(number) not in COUNTRIES:
        raise Refused(field, "invalid_phone", _(
            "This is not a valid French or Belgian phone number: check it, and the country "
            "chosen beside it."))
    return number


def e164(phone: str, *, country: str, field: str = "usager.phone") -> str:
    """A French or Belgian number, national ones read as ``country``'s, in E.164."""
    return phonenumbers.format_number(_parse(phone, country, field),
                                      phonenumbers.PhoneNumberFormat.E164)


def phone_type(phone: str) -> PhoneType:
    """Whether a number (E.164) is a mobile, a landline or something else."""
    try:
        number = phonenumbers.parse(phone, "FR")
    except phonenumbers.NumberParseException:
        return PhoneType.OTHER
    found = phonenumbers.number_type(number)
    if found in (phonenumbers.PhoneNumberType.MOBILE,
                 phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return PhoneType.MOBILE
    if found == phonenumbers.PhoneNumberType.FIXED_LINE:
        return PhoneType.FIXED
    return PhoneType.OTHER


def takes_sms(phone: str | None) -> bool:
    """Whether SMS may go to this number: only to a mobile."""
    return phone is not None and phone_type(phone) is PhoneType.MOBILE


def person_name(name: str, *, field: str) -> str:
    """A first or last name as typed, trimmed; refused when too long or holding a link."""
    name = name.strip()
    if len(name) > NAME_MAX:
        raise Refused(field, "name_too_long", _(
            "A name may be at most {limit} characters long.", limit=NAME_MAX))
    if _LINK.search(name):
        raise Refused(field, "name_with_link", _(
            "A name may not hold a web or e-mail address."))
    return name
