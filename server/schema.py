"""Every domain's tables, imported so that ``Base.metadata`` is complete (Alembic's env, tests).

A domain that adds tables adds its ``models`` module here and an Alembic revision under
``server/db/migrations``. It sits above the domains (it imports them all); nothing below imports it.
"""

from server.accounts import models as accounts_models
from server.audit import models as audit_models
from server.bookings import models as bookings_models
from server.chat import models as chat_models
from server.checks import models as checks_models
from server.consent import models as consent_models
from server.db.base import Base
from server.links import models as links_models
from server.mail import models as mail_models
from server.people import models as people_models
from server.plans import models as plans_models
from server.recording import models as recording_models
from server.safeguarding import models as safeguarding_models
from server.visits import models as visits_models

__all__ = [
    "Base", "accounts_models", "audit_models", "bookings_models", "chat_models", "checks_models",
    "consent_models", "links_models", "mail_models", "people_models", "plans_models", "recording_models",
    "safeguarding_models", "visits_models",
]
