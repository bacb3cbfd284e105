"""The whole schema: every domain's tables on one metadata (for Alembic and for tools that walk all tables).

Each domain declares its tables in its own ``models`` module; importing this
module registers all of them on :data:`loyalty.db.Base`'s metadata.
"""

from __future__ import annotations

import loyalty.apikeys.models
import loyalty.audit
import loyalty.catalogue.models
import loyalty.conversations.models
import loyalty.coupons.models
import loyalty.handoff.models
import loyalty.identity.models
import loyalty.members.models
import loyalty.nlu_review.models
import loyalty.orders.models
import loyalty.outreach.models
import loyalty.points.models
import loyalty.referrals.models
import loyalty.reports.models
import loyalty.staff.models
import loyalty.tiers.models
import loyalty.visits.models  # noqa: F401
from loyalty.db import Base

metadata = Base.metadata
