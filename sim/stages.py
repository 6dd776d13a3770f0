"""Stage names and the fixed shape of the journey.

Stage ids are small integers inside the kernels and names in every table a person
reads. The order is the journey's order; ``lapsed`` is outside it.
"""

STAGES = (
    "unaware",
    "aware",
    "engaged",
    "subscribed",
    "converted",
    "excited",
    "ascended",
    "advocate",
    "promoter",
    "lapsed",
)
N_STAGES = len(STAGES)
STAGE_ID = {name: i for i, name in enumerate(STAGES)}

UNAWARE, AWARE, ENGAGED, SUBSCRIBED, CONVERTED, EXCITED, ASCENDED, ADVOCATE, PROMOTER, LAPSED = range(
    N_STAGES
)

#: Stages in the journey proper (customers in them can lapse; lapsed is absorbing
#: unless ``organic.reactivation`` > 0, which returns people to ``aware``).
JOURNEY = STAGES[:LAPSED]

#: Stages whose customers gave permission to be emailed (the lead magnet bought it).
PERMISSION_STAGES = tuple(range(SUBSCRIBED, LAPSED))

#: Stages whose customers buy the core offer and upsells again and again.
REPEAT_STAGES = (ASCENDED, ADVOCATE, PROMOTER)

#: Cause ids shared by kernels and tables: 0 organic, 1 referral, 2.. channels (the
#: kernels mirror them; tests/test_registry.py ties the two).
CAUSE_ORGANIC = 0
CAUSE_REFERRAL = 1

#: The classic funnel (AIDA, the funnel article) and Arthur D. Little's four phases (the four-phases article):
#: what each stage rolls up to, for tables a dashboard groups by.
AIDA_PHASE = (
    "none", "awareness", "interest", "desire", "action", "action", "action", "action", "action", "lapsed",
)
ADL_PHASE = (
    "preparation", "communication", "communication", "communication", "exchange",
    "after-sale", "after-sale", "after-sale", "after-sale", "after-sale",
)

#: Offer ids: lead magnet, entry-point offer, core offer, then upsells in file order.
OFFER_LEAD_MAGNET, OFFER_ENTRY, OFFER_CORE = 0, 1, 2
