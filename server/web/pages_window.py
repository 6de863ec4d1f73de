"""Join-window pages for /s/{id}: a waiting page with a countdown before the window, an ended page after.

Links work only inside the booked window (a few minutes early allowed, see
LinkService.window); outside it the person sees the time in words instead of the
lobby, and before it the device-check link, so the wait is useful.
"""

from __future__ import annotations

from aiohttp import web

from server.bookings.models import Booking
from server.links.services import LinkHolder, Window
from server.mail.wording import format_when
from server.web.keys import DB, HOLDER, SERVICES
from server.web.pages_render import message_page, render

DEFAULT_ZONE = "Europe/London"


async def outside_window(request: web.Request) -> web.Response | None:
    """The waiting or ended page when /s/{id} is opened outside the join window; None inside it."""
    services = request.app[SERVICES]
    holder: LinkHolder | None = request.get(HOLDER)
    booking: Booking = holder.booking if holder else await services.bookings.get(
        request[DB], int(request.match_info["booking_id"]))
    window = services.links.window(booking)
    when = format_when(booking.starts_at, booking.duration_minutes, DEFAULT_ZONE)
    if window == Window.CLOSED:
        return message_page("This session has ended", f"The session on {when} has ended. Thank you for joining.",
                            status=200)
    if window == Window.NOT_YET:
        opens = booking.starts_at.timestamp() - services.settings.early_join_minutes * 60
        # The countdown runs on the server's time: a family device whose clock is wrong must neither
        # count down to the wrong moment nor reload the page over and over.
        return render("waiting.html", organisation=services.settings.organisation, when=when,
                      opens_in=str(int((opens - services.clock.now().timestamp()) * 1000)),
                      check_url=f"/s/{booking.id}/check")
    return None
