"""Who may call each route: the table the access test walks. A route missing here fails the suite.

Keys are (METHOD, path template as registered). Values are the callers that must get through the access
layer (any status but 401/403); every other caller must be refused with 401 or 403. Callers:
  "anonymous"     nobody signed in, no link
  "practitioner"  the tutor who owns org.booking_id
  "practitioner2" another tutor (not on that booking)
  "admin", "manager", "safeguarding" (TOTP done)
  "head_of_service" the head of the service, no other role (overdue check-out escalation)
  "link"          the guardian holding a join link for org.booking_id (cookie from /l/<token>)
  "link_other"    a guardian holding a link for a different booking
  "check_link"    the guardian holding only a device-check link for org.booking_id: never the live session
"""

from __future__ import annotations

ANYONE = frozenset({"anonymous", "practitioner", "practitioner2", "admin", "manager", "safeguarding",
                    "head_of_service", "link", "link_other", "check_link"})
STAFF = frozenset({"practitioner", "practitioner2", "admin", "manager", "safeguarding", "head_of_service"})
OFFICE = frozenset({"admin", "manager", "safeguarding"})
SESSION = frozenset({"link", "practitioner", "safeguarding"})  # the booking's holder, own tutor, observer
CHECK = SESSION | {"check_link"}  # the device check, and what every family page needs
PLAN_EDITORS = frozenset({"admin", "manager", "practitioner", "practitioner2"})  # lead practitioners: own plans

ACCESS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): ANYONE,
    ("GET", "/healthz"): ANYONE,
    ("GET", "/login"): ANYONE,
    ("GET", "/dashboard"): STAFF,
    ("GET", "/l/{token}"): ANYONE,
    ("GET", "/s/{booking_id}"): SESSION,
    ("GET", "/s/{booking_id}/api/context"): CHECK,
    ("GET", "/s/{booking_id}/ws"): SESSION,
    ("GET", "/api/v1/media/stats"): frozenset({"admin", "manager"}),
    ("GET", "/recordings"): frozenset({"safeguarding"}),
    ("GET", "/s/{booking_id}/check"): CHECK,
    ("POST", "/s/{booking_id}/check/api/offer"): CHECK,
    ("POST", "/s/{booking_id}/check/api/results"): CHECK,
    ("POST", "/s/{booking_id}/check/api/loopback"): CHECK,
    ("POST", "/s/{booking_id}/check/api/loopback/{probe}/answer"): CHECK,
    ("GET", "/api/v1/bookings/{booking_id}/checks"): STAFF,
    ("GET", "/api/v1/recordings"): frozenset({"safeguarding"}),
    ("POST", "/api/v1/recordings/{recording_id}/views"): frozenset({"safeguarding"}),
    ("GET", "/api/v1/recordings/{recording_id}/media"): frozenset({"safeguarding"}),
    ("GET", "/api/v1/openapi.json"): ANYONE,
    ("POST", "/api/v1/auth/login"): ANYONE,
    ("POST", "/api/v1/auth/second-factor"): STAFF,
    ("POST", "/api/v1/auth/logout"): STAFF,
    ("POST", "/api/v1/auth/logout-everywhere"): STAFF,
    ("GET", "/api/v1/me"): STAFF,
    ("POST", "/api/v1/me/totp"): STAFF,
    ("POST", "/api/v1/me/totp/confirm"): STAFF,
    ("GET", "/api/v1/staff"): OFFICE,
    ("POST", "/api/v1/staff"): frozenset({"admin"}),
    ("POST", "/api/v1/staff/{staff_id}/suspend"): frozenset({"safeguarding"}),
    ("POST", "/api/v1/staff/{staff_id}/reinstate"): frozenset({"safeguarding"}),
    ("GET", "/api/v1/clients"): STAFF,
    ("POST", "/api/v1/clients"): frozenset({"admin"}),
    ("GET", "/api/v1/clients/{client_id}"): STAFF,
    ("POST", "/api/v1/clients/{client_id}/guardians"): frozenset({"admin"}),
    ("GET", "/api/v1/guardians"): OFFICE,
    ("POST", "/api/v1/guardians"): frozenset({"admin"}),
    ("GET", "/api/v1/bookings"): STAFF,
    ("POST", "/api/v1/bookings"): frozenset({"admin"}),
    ("GET", "/api/v1/bookings/waiting"): frozenset({"manager", "safeguarding"}),
    ("GET", "/api/v1/bookings/{booking_id}"): STAFF,
    ("POST", "/api/v1/bookings/{booking_id}/cancel"): frozenset({"admin"}),
    ("POST", "/api/v1/bookings/{booking_id}/reschedule"): frozenset({"admin"}),
    ("POST", "/api/v1/bookings/{booking_id}/resend"): frozenset({"admin"}),
    ("POST", "/api/v1/bookings/{booking_id}/evening-agreement"): frozenset({"manager"}),
    ("GET", "/api/v1/mail/failed"): frozenset({"admin", "manager"}),
    # visits, studios, concerns, holds, suspension of clients and families
    ("GET", "/visits"): STAFF,
    ("GET", "/api/v1/visits/proposals"): frozenset({"admin"}),
    ("GET", "/api/v1/visits/mine"): frozenset({"practitioner", "practitioner2"}),
    ("GET", "/api/v1/visits/timetable"): STAFF,
    ("POST", "/api/v1/visits"): frozenset({"admin"}),
    ("GET", "/api/v1/visits/{booking_id}"): STAFF,
    ("POST", "/api/v1/visits/{booking_id}/authorise"): frozenset({"manager", "safeguarding"}),
    ("POST", "/api/v1/visits/{booking_id}/evening-agreement"): frozenset({"manager"}),
    ("POST", "/api/v1/visits/{booking_id}/checklist"): frozenset({"practitioner", "practitioner2"}),
    ("POST", "/api/v1/staff/{staff_id}/unavailable"): frozenset({"admin", "manager"}),
    ("POST", "/api/v1/visits/checklists/{check_id}/confirm"): frozenset({"manager"}),
    ("POST", "/api/v1/clients/{client_id}/workspace-change"): STAFF,
    ("POST", "/api/v1/visits/{booking_id}/itinerary"): frozenset({"practitioner", "practitioner2"}),
    ("POST", "/api/v1/visits/{booking_id}/check-in"): frozenset({"practitioner", "practitioner2"}),
    ("POST", "/api/v1/visits/{booking_id}/check-out"): frozenset({"practitioner", "practitioner2"}),
    ("POST", "/api/v1/visits/{booking_id}/no-show"): frozenset({"practitioner", "practitioner2"}),
    ("POST", "/api/v1/visits/{booking_id}/safety-cancel"): frozenset({"practitioner", "practitioner2"}),
    ("POST", "/api/v1/visits/{booking_id}/record"): frozenset({"practitioner", "practitioner2"}),
    ("GET", "/api/v1/visits/{booking_id}/record"): frozenset({"practitioner", "practitioner2", "manager",
                                                              "safeguarding"}),
    ("GET", "/api/v1/visits/overdue"): frozenset({"manager", "safeguarding", "head_of_service"}),
    ("POST", "/api/v1/visits/{booking_id}/acknowledge"): frozenset({"manager", "safeguarding", "head_of_service"}),
    ("GET", "/api/v1/studios"): STAFF,
    ("POST", "/api/v1/studios"): frozenset({"admin"}),
    ("POST", "/api/v1/studios/{studio_id}/approve"): frozenset({"manager", "safeguarding"}),
    ("GET", "/concerns"): STAFF,  # the page; the API behind it shows each caller only what they may read
    ("POST", "/api/v1/concerns"): STAFF,
    ("GET", "/api/v1/concerns"): STAFF,
    ("GET", "/api/v1/concerns/{concern_id}"): STAFF,
    ("POST", "/api/v1/concerns/{concern_id}/discussed"): frozenset({"manager", "safeguarding"}),
    ("POST", "/api/v1/concerns/{concern_id}/holds"): frozenset({"safeguarding"}),
    ("POST", "/api/v1/holds/{hold_id}/lift"): frozenset({"safeguarding"}),
    ("POST", "/api/v1/clients/{client_id}/legal-holds"): frozenset({"safeguarding"}),
    ("GET", "/s/{booking_id}/concern"): CHECK,
    ("POST", "/s/{booking_id}/api/concern"): CHECK,
    ("POST", "/api/v1/clients/{client_id}/suspend"): frozenset({"safeguarding"}),
    ("POST", "/api/v1/clients/{client_id}/reinstate"): frozenset({"safeguarding"}),
    ("POST", "/api/v1/guardians/{guardian_id}/suspend"): frozenset({"safeguarding"}),
    ("POST", "/api/v1/guardians/{guardian_id}/reinstate"): frozenset({"safeguarding"}),
    # consent (families through their link; paper forms and history for staff)
    ("GET", "/s/{booking_id}/consent"): SESSION,
    ("GET", "/s/{booking_id}/api/consent"): frozenset({"link"}),
    ("POST", "/s/{booking_id}/api/consent"): frozenset({"link"}),
    ("POST", "/s/{booking_id}/api/consent/withdraw"): frozenset({"link"}),
    ("POST", "/api/v1/consents"): OFFICE,
    ("GET", "/api/v1/consents"): STAFF,
    ("POST", "/api/v1/staff/{staff_id}/recording-agreement"): frozenset({"admin", "manager"}),
    # blended plans, staff only (practitioners: the plans they lead, else 404); no family routes
    ("GET", "/api/v1/plans"): STAFF,
    ("POST", "/api/v1/plans"): PLAN_EDITORS,
    ("GET", "/api/v1/plans/{plan_id}"): STAFF,
    ("POST", "/api/v1/plans/{plan_id}/bookings"): PLAN_EDITORS,
    ("DELETE", "/api/v1/plans/{plan_id}/bookings/{booking_id}"): PLAN_EDITORS,
    ("POST", "/api/v1/plans/{plan_id}/resources"): PLAN_EDITORS,
    ("DELETE", "/api/v1/plans/{plan_id}/resources/{resource_id}"): PLAN_EDITORS,
    ("POST", "/api/v1/plans/{plan_id}/end"): PLAN_EDITORS,
}

# Values for path parameters: attribute names of tests.support.org.Org, or a literal string.
PATH_VALUES: dict[str, str] = {
    "booking_id": "booking_id",
    "client_id": "child_id",
    "staff_id": "other_tutor_id",
    "guardian_id": "guardian_id",
    "token": "=not-a-real-token-0123456789",
}
