"""``python -m benchmarks.default_shop``: a scenario's figures against published industry ranges.

Runs a scenario (by default the bundled handbag shop, 1,000,000 customers x 365 days,
with the customers table), computes from the run's tables every figure of the
published benchmarks the model can produce (ad platforms, email service providers,
e-commerce, retention and referral studies) and prints one Markdown table: figure,
value, published range, in or out. The ranges and their sources are data here
(:data:`PUBLISHED`); ``docs/model.md`` shows the table of a real run with the sources.

``--customers N`` simulates N of the market's customers (``market.sample``: budgets,
audience sizes and retainer sessions scaled by ``N / market.customers``, see
docs/model.md), so the figures, all ratios, keep their meaning with a smaller sample;
the money line below the table is the summary's, for the whole market.

How each figure is measured (one replication; with several, the mean and the range):

- per paid channel (cpm and cpc pricing): CPM = spend / impressions x 1000, CTR =
  clicks / impressions, CPC = spend / clicks (``channels`` table);
- per email channel (per_send pricing): open and click rates per send; a channel
  whose audience is a set of days after the opt-in is a welcome flow, one that mails
  only lapsed customers a win-back, any other a campaign; the unsubscribe rate per
  send over all email channels together (the ``channels`` table's split of
  unsubscribes among email channels is not each channel's own);
- annual list churn: of the customers on the list on day 0 (subscribed at the start),
  the share without email permission at the end (``customers``); the model loses
  addresses only by unsubscribing (no bounces);
- opt-in rate: opt-ins (moves engaged -> subscribed, ``transitions``) per session of
  all channels, as popup studies count sign-ups per visitor shown the form;
- conversion per session: orders (entry, core and upsell units, ``finance``) per
  session;
- entry purchase within 30 days: new subscribers (day 1 .. horizon - 30) who reach
  ``converted`` within 30 days of subscribing; subscribers who ever buy: everyone
  subscribed during the run or at its start who reaches ``converted`` by the horizon;
- repeat purchase rate: first-time buyers of the run with two or more orders by the
  horizon; median days to the second order (``orders``, order number 2); buyers with
  two orders who place a third by the horizon;
- annual retention: buyers whose first order was in days 1 .. 91 who are still a
  customer (converted .. promoter, not lapsed) at the horizon, 274 .. 364 days later;
- CAC = spend / new customers (entry buyers; ``summary``); AOV = revenue / orders;
  LTV = revenue per new customer within the run (the summary's ``ltv_*`` blended);
- share of new customers acquired by referral (``customers``: acquired_by);
- share of sessions from SEO/content (fixed-price channels);
- seasonality: Nov + Dec share of revenue, and revenue a day from Black Friday to Cyber
  Monday over an average October day (``finance``, days placed by ``start_date``).

A figure is "in" when it lies in the published range (a single published figure: within
10% of it). Nothing here asserts anything; the table says which figures land in their
range.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import cvj
from cvj.errors import CvjError
from cvj.names import escape
from cvj.scenario import Audience, Scenario, load_scenario

DEFAULT_CUSTOMERS = 1_000_000


@dataclass(frozen=True)
class Source:
    title: str
    year: str
    address: str


@dataclass(frozen=True)
class Published:
    """A published range ``lo .. hi`` (in the figure's unit) and where it comes from."""

    lo: float
    hi: float
    text: str  # the range as the sources state it
    sources: tuple[Source, ...]


S = Source
WORDSTREAM_FB = S(
    "WordStream Facebook Ads Industry Benchmarks (256 US accounts), via narrative.bi and The James Agency",
    "2017", "https://www.narrative.bi/advertising/facebook-ad-benchmarks-across-your-industry ; "
    "https://thejamesagency.com/blog/facebook-ad-industry-benchmarks-where-you-need-to-be/",
)
LEBESGUE = S("Lebesgue, Facebook Benchmarks by Industry in 2024: CTR, CPM, CR, and CAC", "2024",
             "https://lebesgue.io/facebook-ads/facebook-benchmarks-by-industry-ctr-cpm-cr-and-cac/")
TWOOWLS = S("TwoOwls, CPM Facebook Ads (Statista/Hootsuite data)", "2024", "https://twoowls.io/blogs/cpm-facebook-ads")
ROCKADS = S("RockAds, CPM in Meta Ads: Why It's High and How to Reduce It", "2024",
            "https://blog.rockads.com/cpm-in-meta-ads-why-its-high-and-how-to-reduce-it")
SUPERADS = S("Superads, Facebook ads CPM, e-commerce", "2024-25",
             "https://www.superads.ai/facebook-ads-costs/cpm-cost-per-mille/e-commerce")
FITSMALL = S("WordStream via FitSmallBusiness, How much does Facebook advertising cost", "c. 2018-20",
             "https://fitsmallbusiness.com/how-much-does-facebook-advertising-cost/")
LOCALIQ_2024 = S("LocalIQ/WordStream Search Advertising Benchmarks 2024, via Digital Information World", "2024",
                 "https://www.blogarama.com/tools-blogs/256999-digital-information-world-blog/58639083-understanding-trends-search-advertising-conversion-rates-costs")
ADBACKLOG = S("AdBacklog, Google Ads Benchmarks Per Industry (2025)", "2025",
              "https://adbacklog.com/blog/google-ads-benchmarks-per-industry-2025")
WORDSTREAM_2021 = S("WordStream + LOCALiQ, Paid Search Advertising Benchmarks for 2021", "2021",
                    "https://onlinezmeendotpk.blogspot.com/2023/08/2021-paid-search-advertising-benchmarks.html")
MAILCHIMP = S("Mailchimp, Email Marketing Benchmarks", "2018",
              "https://mailchimp.com/resources/research/email-marketing-benchmarks/ ; "
              "https://partners.evvnt.com/hc/en-us/articles/360024711433-Average-email-campaign-stats-of-customers-by-industry")
CAMPAIGN_MONITOR = S("Campaign Monitor industry benchmarks, via Bizness Journal", "2022", "https://bizness-journal.com/2022/08")
KLAVIYO = S("Klaviyo industry benchmarks, via BS&Co; Klaviyo 2024 Benchmark Report", "2024-26",
            "https://bsandco.us/blog-post/ecommerce-email-marketing-benchmarks-january-2026 ; "
            "https://resources.klaviyo.com/2024-benchmark-report/p/2")
OMNISEND_WELCOME = S("Omnisend welcome automation benchmarks, via Digital Applied", "2026",
                     "https://www.digitalapplied.com/blog/welcome-email-onboarding-sequence-2026-framework")
EMS_APPENDIX = S("Email Marketing Skill, Appendix A: Benchmarks by Industry (compilation, weak)", "2026",
                 "https://www.emailmarketingskill.com/appendix-a-benchmarks")
LIST_DECAY = S("HubSpot via Savoir Faire; MailFlow Authority; Adestra, List churn", "2017-24",
               "https://savoirfaire-us.com/blog/email-list-decay-inevitable-not-necessarily-bad/ ; "
               "https://mailflowauthority.com/list-hygiene/email-list-decay-rate ; "
               "https://www.adestra.com/blog/term-of-the-week-list-churn/")
SUMO = S("Sumo popup study (1.7bn popups), via Lucky Orange", "2018",
         "https://blog.luckyorange.com/2018/07/09/the-curious-case-of-popups/")
GROWTH_HACKER = S("The Growth Hacker, Popup Conversion Rate Optimization for Ecommerce (weak)", "n.d.",
                  "https://thegrowthhacker.io/blog/popup-conversion-rate-optimization-ecommerce")
LITTLEDATA = S("Littledata Shopify benchmarks (about 2,800 stores, 2023 data), via StorePilot", "2023",
               "https://www.usestorepilot.com/blog/shopify-conversion-rate-benchmarks-2026/")
CENTRA = S("Centra, The conversion rate benchmark: how fashion verticals compare", "2024-25",
           "https://centra.com/news/conversion-rate-fashion-ecommerce-benchmarks")
BARILLIANCE = S("Barilliance, How COVID-19 Is Impacting the Fashion Industry", "2020",
                "https://www.barilliance.com/covid-19-imacts-fashion-clothing-stats/")
KLAVIYO_WELCOME = S("Klaviyo 2024 Benchmark Report (welcome flow placed-order rate)", "2024",
                    "https://resources.klaviyo.com/2024-benchmark-report/p/4")
FORMTORO = S("Formtoro, subscription-to-conversion rates (vendor)", "n.d.",
             "https://formtoro.com/guides/the-ultimate-guide-to-understanding-ecommerce-subscription-to-conversion-rates")
TINUITI = S("Tinuiti, ecommerce email", "n.d.", "https://tinuiti.com/blog/ecommerce/ecommerce-email/")
BRONTO = S("Bronto (Oracle), Pursuing the first purchase", "c. 2016",
           "https://blog.bronto.com/commercemarketing/pursuing-first-purchase-converting-subscribers-buyers/")
RJMETRICS = S("RJMetrics 2015 Ecommerce Buyer Behavior Benchmark, via PR Newswire", "2015",
              "https://www.prnewswire.com/news-releases/new-ecommerce-data-ecommerce-customer-loyalty-is-rare-300090535.html")
METRILO = S("Metrilo, retention rate by niche", "n.d.", "https://metrilo.com/glossary/retention-rate")
RETENTION_EDGE = S("The Retention Edge (Omniconvert 25%, Adobe Digital Index 27%)", "n.d.",
                   "https://retentionedge.co/p/getting-to-the-second-sale")
AIQ = S("AIQ Labs, customer retention in the apparel industry (weak, no primary source)", "n.d.",
        "https://aiqlabs.ai/blog/ai-powered-customer-retention-in-the-apparel-industry-how-to-keep-repeat-buyers")
BLOOMREACH = S("Bloomreach documentation, Time between purchases (generic)", "n.d.",
               "https://documentation.bloomreach.com/engagement/docs/time-between-purchases")
UPSELLA = S("Upsella, Customer Retention Rate: Benchmarks & Strategies for Shopify (vendor)", "n.d.",
            "https://upsella.com/blog/customer-retention-shopify")
FIRST_PAGE_SAGE = S("First Page Sage, Average CAC for eCommerce Companies", "2024",
                    "https://firstpagesage.com/reports/average-cac-for-ecommerce-companies/")
YOTPO = S("Yotpo, Fashion avg AOV (3,000 stores)", "2023", "https://www.yotpo.com/blog/fashion-avg-aov/")
BESTFORECOMMERCE_AOV = S("bestforecommerce.com, AOV compilation", "n.d.", "https://bestforecommerce.com/?p=3645")
LTV_CAC = S("bestforecommerce, LTV to CAC benchmarks; Fairview; First Page Sage", "2024",
            "https://bestforecommerce.com/ecommerce-statistics/customer-retention/ltv-to-cac-benchmarks/ ; "
            "https://getfairview.com/blog/ltv-cac-ratio-benchmarks")
EXTOLE = S("Extole docs, Terms You Should Know", "n.d.", "https://docs.extole.com/docs/terms-you-should-know")
REFERRALCANDY = S("ReferralCandy, Referral Program Benchmarks: What's A Good Referral Rate?", "2022-24",
                  "https://referralcandy.com/blog/referral-rates")
CONDUCTOR = S("Conductor organic search study (30 sites, 310m visits), via Promofill", "c. 2014",
              "https://promofill.com/?p=2768")
BRIGHTEDGE = S("BrightEdge Research, via 417 Marketing", "2019",
               "https://www.417marketing.com/paid-search-and-organic-traffic-on-the-rise/")
NRF = S("NRF, Winter Holiday FAQs", "2020-21", "https://nrf.com/topics/holiday-and-seasonal-trends/winter-holidays/winter-holiday-faqs")
ADOBE = S("Adobe Analytics, Cyber Monday 2023 media alert", "2023",
          "https://news.adobe.com/news/news-details/2023/media-alert-adobe-cyber-monday-surges-to-12-4-billion-in-online-spending-breaking-e-commerce-record")
ORIBI = S("Oribi, Black Friday and Cyber Monday benchmark report", "n.d.",
          "https://oribi.io/benchmark-reports/black-friday-and-cyber-monday")

PCT = "%"
PUBLISHED: dict[str, Published] = {
    "social.cpm": Published(8.01, 18.78, "$8.01 (clothing & accessories) - $18.78 (e-commerce avg); apparel $10.06",
                            (TWOOWLS, ROCKADS, SUPERADS)),
    "social.ctr": Published(0.0090, 0.0161, "0.90% (all industries) - 1.61% (top industry); apparel 1.24%, clothing 1.35%",
                            (WORDSTREAM_FB, LEBESGUE)),
    "social.cpc": Published(0.45, 1.72, "$0.45 (apparel) - $1.72 (all industries)", (FITSMALL, WORDSTREAM_FB)),
    "search.ctr": Published(0.060, 0.065, "6.0% - 6.5% (apparel / fashion)", (LOCALIQ_2024, ADBACKLOG)),
    "search.cpc": Published(2.23, 3.39, "$2.23 - $3.39 (apparel, shopping & gifts)", (WORDSTREAM_2021, LOCALIQ_2024, ADBACKLOG)),
    "campaign.open": Published(0.1566, 0.3793, "15.7% (e-commerce, pre-MPP) - 37.9% (Klaviyo campaigns, MPP-inflated)",
                               (MAILCHIMP, CAMPAIGN_MONITOR, KLAVIYO)),
    "campaign.click": Published(0.0070, 0.0207, "0.70% (retail) - 2.07% (e-commerce) per send", (CAMPAIGN_MONITOR, MAILCHIMP)),
    "email.unsubscribe": Published(0.0010, 0.0040, "0.10% - 0.40% per send (e-commerce 0.24%)", (MAILCHIMP,)),
    "flow.open": Published(0.3553, 0.4857, "35.5% (Omnisend welcome) - 48.6% (Klaviyo flows)", (OMNISEND_WELCOME, KLAVIYO)),
    "flow.click": Published(0.0394, 0.0467, "3.94% (Omnisend welcome) - 4.67% (Klaviyo flows)", (OMNISEND_WELCOME, KLAVIYO)),
    "winback.open": Published(0.10, 0.15, "10% - 15%", (EMS_APPENDIX,)),
    "winback.click": Published(0.01, 0.02, "1% - 2%", (EMS_APPENDIX,)),
    "list_churn": Published(0.15, 0.30, "15-22% (B2C) - 30% a year; 22.5% (HubSpot)", (LIST_DECAY,)),
    "opt_in": Published(0.02, 0.04, "2% - 4% of visitors (e-commerce popups); 3.09% average", (GROWTH_HACKER, SUMO)),
    "conversion": Published(0.014, 0.0311, "1.4% (Shopify avg) - 2.4% (fashion median) - 3.11% (clothing & accessories)",
                            (LITTLEDATA, CENTRA, BARILLIANCE)),
    "entry_30": Published(0.0232, 0.08, "2.32% (welcome flow order rate) - 8% (discount-popup subscribers)",
                          (KLAVIYO_WELCOME, FORMTORO)),
    "ever_buy": Published(0.30, 0.40, "about one third; 60-70% never buy", (TINUITI, BRONTO)),
    "repeat": Published(0.25, 0.32, "25% - 32% order again (within 12 months); apparel 26%",
                        (RJMETRICS, METRILO, RETENTION_EDGE)),
    "third_order": Published(0.53, 0.53, "53% of second-time buyers buy a third time", (RJMETRICS,)),
    "second_order_days": Published(15, 120, "15-27 days (apparel, weak); 30 days - 4 months (generic)", (AIQ, BLOOMREACH)),
    "retention": Published(0.25, 0.38, "25-30% (fashion & apparel) - 38% (e-commerce)", (UPSELLA,)),
    "cac": Published(53.0, 91.0, "$53 - $91 (fashion $66)", (FIRST_PAGE_SAGE,)),
    "aov": Published(40.0, 170.0, "$40 - $170 (fashion band); fashion $97", (BESTFORECOMMERCE_AOV, YOTPO)),
    "cac_aov": Published(53.0 / 97.0, 91.0 / 97.0, "0.55 - 0.94 (derived: CAC $53-91 over fashion AOV $97)",
                         (FIRST_PAGE_SAGE, YOTPO)),
    "ltv_cac": Published(2.0, 4.0, "2:1 - 4:1 healthy; 3:1 target (24-month or lifetime LTV)", (LTV_CAC, FIRST_PAGE_SAGE)),
    "referral_share": Published(0.023, 0.15, "2.3% (average referral rate) - 15% (referral programmes: 5-15%)",
                                (REFERRALCANDY, EXTOLE)),
    "seo_share": Published(0.47, 0.56, "47% (all sectors) - 56% (online retail); 53% (BrightEdge)", (CONDUCTOR, BRIGHTEDGE)),
    "nov_dec": Published(0.19, 0.19, "about 19% (US retail, 5-year average; higher for some retailers)", (NRF,)),
    "cyber_weekend": Published(2.9, 5.0, "2.9x (apparel on Cyber Monday, vs an average October day) - "
                               "3.5x (Black Friday) - 5x (Cyber Monday) a store's average day", (ADOBE, ORIBI)),
}


@dataclass
class Figure:
    name: str
    key: str  # into PUBLISHED
    unit: str  # "%", "$", "x", "days"
    values: list[float]

    @property
    def value(self) -> float:
        v = [x for x in self.values if x is not None and math.isfinite(x)]
        return float(np.mean(v)) if v else float("nan")

    @property
    def verdict(self) -> str:
        pub = PUBLISHED.get(self.key)
        v = self.value
        if pub is None or not math.isfinite(v):
            return "n/a"
        lo, hi = pub.lo, pub.hi
        if lo == hi:  # a single published figure: within 10% of it
            lo, hi = 0.9 * lo, 1.1 * hi
        return "in" if lo <= v <= hi else "out"


# --------------------------------------------------------------------------- the run


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _sum(t: pa.Table, col: str, mask=None) -> float:
    a = t.column(col)
    if mask is not None:
        a = pc.filter(a, mask)
    s = pc.sum(a).as_py()
    return float(s or 0.0)


def _names(t: pa.Table, col: str) -> np.ndarray:
    """A dictionary column as an array of str (nulls as None)."""
    return np.array(t.column(col).cast(pa.string()).to_pylist(), dtype=object)


def _days(t: pa.Table, col: str) -> np.ndarray:
    """A nullable day column as float (NaN: never)."""
    return t.column(col).to_numpy(zero_copy_only=False).astype(np.float64)


def email_kind(sc: Scenario, name: str) -> str:
    """How an email channel is benchmarked: 'flow' (a sequence on days after the
    opt-in), 'winback' (only lapsed customers) or 'campaign'."""
    aud = sc.channels[name].audience
    if isinstance(aud, Audience) and aud.days is not None:
        return "flow"
    if isinstance(aud, Audience) and aud.stages == ["lapsed"]:
        return "winback"
    return "campaign"


def figures_of(sc: Scenario, tables: dict[str, pa.Table]) -> dict[str, float]:
    """Every figure of one replication, by name (see the module docstring)."""
    out: dict[str, float] = {}
    D = sc.market.days
    ch = tables["channels"]
    names = _names(ch, "channel")
    sessions = _sum(ch, "sessions")
    for name, c in sc.channels.items():
        m = pa.array(names == name)
        spend, impressions, clicks = _sum(ch, "spend", m), _sum(ch, "impressions", m), _sum(ch, "clicks", m)
        if c.pricing in ("cpm", "cpc"):
            out[f"{name}|cpm"] = ratio(1000.0 * spend, impressions)
            out[f"{name}|ctr"] = ratio(clicks, impressions)
            out[f"{name}|cpc"] = ratio(spend, clicks)
        elif c.pricing == "per_send":
            sends = _sum(ch, "sends", m)
            out[f"{name}|open"] = ratio(_sum(ch, "opens", m), sends)
            out[f"{name}|click"] = ratio(clicks, sends)
    # unsubscribes over every email channel: the kernel counts them exactly, but the
    # channels table shares them among email channels by summed per-cell hazards, not
    # weighted by the customers in each cell, so one channel's share is not its own
    email = pa.array(_names(ch, "pricing") == "per_send")
    out["email_unsubscribe"] = ratio(_sum(ch, "unsubscribes", email), _sum(ch, "sends", email))
    fixed = pa.array(_names(ch, "pricing") == "fixed")
    out["seo_share"] = ratio(_sum(ch, "sessions", fixed), sessions)

    tr = tables["transitions"]
    opt_ins = _sum(tr, "customers", pa.array((_names(tr, "from_stage") == "engaged") & (_names(tr, "to_stage") == "subscribed")))
    out["opt_in"] = ratio(opt_ins, sessions)

    fin = tables["finance"]
    items = _names(fin, "item")
    offers = list(sc.offer_names)
    bought = pa.array(np.isin(items, [o for o in offers if o != "lead_magnet"]))
    orders = _sum(fin, "units", bought)
    revenue = _sum(fin, "revenue")
    out["conversion"] = ratio(orders, sessions)
    out["aov"] = ratio(revenue, orders)

    s = tables["summary"].to_pylist()[0]
    out["cac"] = s["cac"] if s["cac"] is not None else float("nan")
    out["ltv"] = ratio(s["revenue"], s["conversions"])
    out["cac_aov"] = ratio(out["cac"], out["aov"])
    out["ltv_cac"] = ratio(out["ltv"], out["cac"])

    # the calendar: Nov + Dec share of revenue, Black Friday weekend over an average October day
    if sc.start_date is not None:
        day = fin.column("day").to_numpy()
        rev = fin.column("revenue").to_numpy()
        daily = np.bincount(day, weights=rev, minlength=D + 1)
        dates = [sc.start_date + timedelta(days=d - 1) for d in range(D + 1)]
        months = np.array([x.month for x in dates])
        months[0] = 0
        if D >= 365:
            out["nov_dec"] = ratio(daily[np.isin(months, (11, 12))].sum(), daily[1:].sum())
        october = daily[months == 10]
        # Black Friday to Cyber Monday: the Friday after the fourth Thursday of November,
        # to the Monday after it (four days, so one day's few orders weigh less)
        for year in sorted({x.year for x in dates[1:]}):
            thursdays = [date(year, 11, d) for d in range(1, 31) if date(year, 11, d).weekday() == 3]
            first = (thursdays[3] + timedelta(days=1) - sc.start_date).days + 1
            if 1 <= first and first + 3 <= D and october.size:
                out["cyber_weekend"] = ratio(daily[first : first + 4].mean(), october.mean())

    cu = tables.get("customers")
    if cu is not None:
        sub = _days(cu, "day_subscribed")
        conv = _days(cu, "day_converted")
        new = (sub >= 1) & (sub <= D - 30)
        out["entry_30"] = ratio(float(np.sum(new & (conv - sub <= 30))), float(new.sum()))
        subscribed = ~np.isnan(sub)
        out["ever_buy"] = ratio(float(np.sum(subscribed & ~np.isnan(conv))), float(subscribed.sum()))
        n_orders = cu.column("orders").to_numpy()
        buyers = conv >= 1  # first-time buyers of the run (not customers who started as buyers)
        out["repeat"] = ratio(float(np.sum(buyers & (n_orders >= 2))), float(buyers.sum()))
        out["third_order"] = ratio(float(np.sum(buyers & (n_orders >= 3))), float(np.sum(buyers & (n_orders >= 2))))
        final = _names(cu, "final_stage")
        early = buyers & (conv <= 91)
        active = np.isin(final, ["converted", "excited", "ascended", "advocate", "promoter"])
        out["retention"] = ratio(float(np.sum(early & active)), float(early.sum()))
        acquired = _names(cu, "acquired_by")
        out["referral_share"] = ratio(float(np.sum(buyers & (acquired == "referral"))), float(buyers.sum()))
        # the starting list: who of it can still be emailed at the end
        start = sub == 0
        permission = cu.column("email_permission").to_numpy(zero_copy_only=False)
        out["list_churn"] = ratio(float(np.sum(start & ~permission)), float(start.sum()))

    od = tables["orders"]
    second = pc.equal(od.column("order_number"), 2)
    gaps = pc.filter(od.column("days_since_previous"), second).to_numpy()
    weights = pc.filter(od.column("orders"), second).to_numpy()
    if weights.sum() > 0:
        order = np.argsort(gaps)
        cum = np.cumsum(weights[order])
        out["second_order_days"] = float(gaps[order][np.searchsorted(cum, cum[-1] / 2.0)])
    for key in ("profit", "payback_day", "front_end_profit", "back_end_profit", "spend", "revenue", "conversions"):
        out[key] = s[key] if s[key] is not None else float("nan")
    return out


def table_rows(sc: Scenario, per_rep: list[dict[str, float]]) -> list[Figure]:
    """The figures to print, in order, with the published range each is held against."""

    def fig(name, key, unit, value_key):
        return Figure(name, key, unit, [r.get(value_key, float("nan")) for r in per_rep])

    rows = []
    for name, c in sc.channels.items():
        if c.pricing == "cpm":
            kind = "social"
            rows += [
                fig(f"{name}: CPM", f"{kind}.cpm", "$", f"{name}|cpm"),
                fig(f"{name}: CTR", f"{kind}.ctr", PCT, f"{name}|ctr"),
                fig(f"{name}: CPC", f"{kind}.cpc", "$", f"{name}|cpc"),
            ]
        elif c.pricing == "cpc":
            rows += [
                fig(f"{name}: CPM", "search.cpm", "$", f"{name}|cpm"),
                fig(f"{name}: CTR", "search.ctr", PCT, f"{name}|ctr"),
                fig(f"{name}: CPC", "search.cpc", "$", f"{name}|cpc"),
            ]
    for name, c in sc.channels.items():
        if c.pricing == "per_send":
            kind = email_kind(sc, name)
            rows += [
                fig(f"{name} ({kind}): open rate per send", f"{kind}.open", PCT, f"{name}|open"),
                fig(f"{name} ({kind}): click rate per send", f"{kind}.click", PCT, f"{name}|click"),
            ]
    rows.append(fig("email, all channels: unsubscribe rate per send", "email.unsubscribe", PCT, "email_unsubscribe"))
    rows += [
        fig("annual list churn (starting list, unsubscribed by the horizon)", "list_churn", PCT, "list_churn"),
        fig("opt-in rate (opt-ins per session)", "opt_in", PCT, "opt_in"),
        fig("conversion rate (orders per session)", "conversion", PCT, "conversion"),
        fig("new subscribers buying the entry offer within 30 days", "entry_30", PCT, "entry_30"),
        fig("subscribers who buy within the horizon", "ever_buy", PCT, "ever_buy"),
        fig("repeat purchase rate (first-time buyers ordering again)", "repeat", PCT, "repeat"),
        fig("median days to the second order", "second_order_days", "days", "second_order_days"),
        fig("second-time buyers who order a third time", "third_order", PCT, "third_order"),
        fig("annual retention (buyers of days 1-91 still customers at the horizon)", "retention", PCT, "retention"),
        fig("CAC (spend per new customer)", "cac", "$", "cac"),
        fig("AOV (revenue per order)", "aov", "$", "aov"),
        fig("CAC / AOV", "cac_aov", "x", "cac_aov"),
        fig("LTV:CAC (revenue per new customer within the run / CAC)", "ltv_cac", "x", "ltv_cac"),
        fig("new customers acquired by referral", "referral_share", PCT, "referral_share"),
        fig("sessions from SEO/content", "seo_share", PCT, "seo_share"),
        fig("Nov + Dec share of revenue", "nov_dec", PCT, "nov_dec"),
        fig("Black Friday - Cyber Monday revenue a day / average October day", "cyber_weekend", "x", "cyber_weekend"),
    ]
    return [r for r in rows if any(v is not None and math.isfinite(v) for v in r.values)]


# --------------------------------------------------------------------------- printing


def fmt(v: float, unit: str) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if unit == PCT:
        return f"{100 * v:.2f}%"
    if unit == "$":
        return f"${v:,.2f}"
    if unit == "x":
        return f"{v:.2f}x"
    return f"{v:,.0f}"


def render(rows: list[Figure], sources: bool = False) -> str:
    """The figures as one Markdown table (with ``sources``: title, year and address)."""
    head = ["figure", "value", "published range", "in/out"] + (["sources"] if sources else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---:", "---", "---"] + (["---"] if sources else [])) + "|"]
    for r in rows:
        value = fmt(r.value, r.unit)
        finite = [v for v in r.values if v is not None and math.isfinite(v)]
        if len(finite) > 1:
            value += f" ({fmt(min(finite), r.unit)} - {fmt(max(finite), r.unit)})"
        pub = PUBLISHED.get(r.key)
        cells = [escape(r.name), value, pub.text if pub else "none published", r.verdict]
        if sources:
            cells.append("; ".join(f"{s.title}, {s.year}, {s.address}" for s in pub.sources) if pub else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def money_lines(sc: Scenario, per_rep: list[dict[str, float]]) -> list[str]:
    """The run's money: is the year profitable, and how (front end, back end, payback)."""

    def mean(key):
        v = [r[key] for r in per_rep if math.isfinite(r[key])]
        return float(np.mean(v)) if v else float("nan")

    cur = escape(sc.currency)
    payback = [r["payback_day"] for r in per_rep]
    pb = "never" if not all(math.isfinite(p) for p in payback) else ", ".join(f"{p:.0f}" for p in payback)
    return [
        f"spend {mean('spend'):,.0f} {cur}, revenue {mean('revenue'):,.0f} {cur}, "
        f"profit {mean('profit'):,.0f} {cur} (front end {mean('front_end_profit'):,.0f}, "
        f"back end {mean('back_end_profit'):,.0f}), new customers {mean('conversions'):,.0f}, payback day {pb}",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.default_shop",
        description="A scenario's figures against published industry ranges (a Markdown table).",
    )
    ap.add_argument("--scenario", type=Path, default=None, help="scenario file (default: the bundled default shop)")
    ap.add_argument("--customers", type=int, default=None,
                    help="simulate this many of the market's customers (market.sample: budgets, audiences and "
                    "retainer sessions scaled)")
    ap.add_argument("--replications", type=int, default=1, help="replications 0 .. R-1 (default 1)")
    ap.add_argument("--sources", action="store_true", help="add each range's sources (title, year, address)")
    args = ap.parse_args(argv)
    if args.customers is not None and args.customers <= 0:
        print(f"error: --customers = {args.customers}: must be a positive number of customers", file=sys.stderr)
        return 2
    if args.replications <= 0:
        print(f"error: --replications = {args.replications}: must be at least 1", file=sys.stderr)
        return 2
    try:
        sc = load_scenario(args.scenario, {"market.sample": args.customers} if args.customers is not None else None)
        res = cvj.run(sc, replications=args.replications, customers_table=True)
    except CvjError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    per_rep = [figures_of(sc, res.parts[r]) for r in res.replications]
    rows = table_rows(sc, per_rep)
    where = "the bundled default" if args.scenario is None else escape(str(args.scenario))
    simulated = f" ({sc.market.simulated:,} simulated)" if sc.market.sample is not None else ""
    print(f"{escape(sc.name)} ({where}): {sc.market.customers:,} customers{simulated} x {sc.market.days} days, "
          f"seed {sc.market.seed}, {args.replications} replication(s)\n")
    print(render(rows, sources=args.sources))
    print()
    for line in money_lines(sc, per_rep):
        print(line)
    n_in = sum(r.verdict == "in" for r in rows)
    n_out = sum(r.verdict == "out" for r in rows)
    print(f"{n_in} figures in their published range, {n_out} out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
