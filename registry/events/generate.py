"""Synthetic shop events: the embedded default data source (no download, seeded, vectorised with numpy).

The generative story
--------------------
A fixed catalog (18 categories such as ``electronics.smartphone`` or ``apparel.shoes``, 3-4 brands each,
models per brand, 1-3 variants per model) gives every item a category, a brand and a price drawn lognormally
around the category's median. Popular brands (listed first) are browsed more. The catalog is the same for
every seed.

Every user has
  * an activity level (sessions per day, lognormal: a few heavy users, many light ones),
  * category preferences (a sparse Dirichlet draw) and a favourite brand per category,
  * a rate of *intent episodes* (loosely tied to activity) and a conversion propensity (lognormal).

**Intent** is a per-user process made of episodes. An episode starts at a random time (Poisson per user),
targets one item of a preferred category (usually of the favourite brand), ramps up over ``ramp`` days
(gamma, mean 8) to a peak height ``h`` (beta, mean 0.67) and then decays (time constant ~0.8 days)::

    intent(t) = h * (t - start) / ramp               while ramping up
    intent(t) = h * exp(-(t - peak) / decay)         after the peak

Intent drives what a user does:
  * sessions per day = ``weekday * (activity * (1 + 3 * intent) + 1.0 * intent)``, at hours drawn from a
    daily curve (evening peak, quiet nights); weekends are busier;
  * a session holds ``1 + Poisson(1.5 + 5 * intent)`` blocks (view, search, view->cart[->remove],
    view->favourite) in random order; carts and searches grow likelier with intent, and blocks move to the
    episode's category and item. 40% of sessions are *research* (searches, no carts) or *shopping* (carts,
    no searches); the rest may hold both;
  * events inside a session are spaced by lognormal gaps (~50 s between pages, ~25 s from a view to its
    cart, ~2 min before a remove).

Purchases come from three sources, each a purchase session (0-2 other views, then view -> cart -> purchase):
  * **search->cart**: a cart at most ``PATTERN_WINDOW_MINUTES`` after a search for the same category, in
    the same session, leads with probability ``PATTERN_PURCHASE_P`` (0.9) to buying the carted item a few
    days later (gamma with shape 4 and mean ``PATTERN_DELAY_DAYS``, 2.5: rarely within a day). An episode
    that ended this way before its peak is over;
  * **episode conversion**: every episode's fate is drawn when it starts: it converts at its peak with
    probability ``0.55 * propensity * h``, buying its target item (unless a search->cart purchase came
    first);
  * **impulse** buys at a small rate proportional to activity and propensity, which nobody can foresee.

Planted signals and which encoder should see them
-------------------------------------------------
1. **Aggregates** (counts per event type over 1/7/30 days, recency, spend): users ramping up an episode visit
   more, view their category more and cart more; high-propensity users buy more often. "Purchase in the next
   7 days" is learnable from windowed counts: logistic regression on log counts reaches ROC-AUC ~0.80 (see
   tests/test_generate.py).
2. **Order** (a sequence encoder): search->cart within minutes makes a purchase in the next days very likely
   (~0.95 observed), while the same counts in the other order (cart, then search) give ~0.60 and a cart with
   no search ~0.31. Block order within a session is random, so per-window counts cannot tell the two apart.
3. **Query text** (a text encoder): a search's wording has a level, 0 ``"shoes"``, 1 ``"nike shoes"``,
   2 ``"nike air max 90"``, 3 ``"buy nike air max 90"`` / ``"nike air max 90 price"``. A buyer (on target in
   an episode whose fate is to convert, before its peak: once bought, the words go generic again) searches at
   level ``floor(4 * intent + 1.5 + N(0, 0.7))``; everyone else at most at level 1. Model names and "buy ..."
   thus come from buyers about to buy, while the number of searches follows intent alone, whatever the fate:
   the words tell who will buy, the counts cannot.

How much each signal is worth beyond the counts (an oracle that is told it; 3,000 users x 60 days, daily
cutoffs, logistic regression on the user_activity aggregates, held-out users): a search->cart in the last 2
days (3.5% of user-days, 93% of them buy within 7 days) lifts PR-AUC from 0.528 to 0.570 (ROC-AUC 0.788 ->
0.791); a model-name or buy query in the last 2 days (4.7%, 84% buy) lifts it to 0.592 (ROC-AUC 0.798).
With the signal switched off the same flags add nothing (order: +0.000 PR-AUC; query wording shuffled:
+0.003). Before the fate-linked wording and the commoner, slower search->cart, both oracles added under 0.001
ROC-AUC: no encoder could show a gain. tests/test_generate.py pins both gains and both ablations.

Ablations (for measuring what each signal is worth; the defaults are the story above):
``order_effect=False`` drops the purchases the search->cart pattern triggers (those episodes convert at
their peak as their fate says), so event order no longer predicts buying; ``query_signal=False`` detaches
query wording from intent and fate (each search takes the intent and fate of another search of its chunk,
drawn at random: the mix of generic and specific queries is kept, who searches which is not). Browsing is
unchanged by either switch.

Conventions: user ids are ``1..users``. Search rows carry ``category`` (the category the search is scoped
to, as shops log it) and ``query``; their ``item_id``, ``brand``, ``price`` and ``quantity`` are null.
``quantity`` is set on cart, remove_from_cart and purchase rows only. Funnel rule: every purchase is preceded,
in the same session, by a view and a cart of the same item; every remove_from_cart by a cart of that item.
``session_id`` is ``"<user_id>-<n>"``, ``n`` counting the user's sessions in time order. The frame is sorted
by ``event_time``; 14 warm-up days are simulated before ``start`` and dropped, so day one looks like the rest.

Users never interact, so they are simulated in chunks of ``USERS_PER_CHUNK`` with a seed per chunk: memory
stays bounded and ten million events take ~20 s of CPU.
"""

from __future__ import annotations

import builtins
import functools
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import pandas as pd

from registry.events.schema import EVENT_TYPES, conform

# ---- tunables (the story's numbers; the tests pin the behaviour they produce) ---------------------------
WARMUP_DAYS = 14  # simulated before `start` and dropped, so the first days already look stationary
USERS_PER_CHUNK = 4096  # users simulated together: bounds memory, keeps arrays small enough to stay fast
# Users.
ACTIVITY_MEDIAN = 0.15  # sessions per day of a median user without intent (lognormal, sigma 0.9)
EPISODES_PER_DAY = 0.05  # a median user's rate of intent episodes
# Intent episodes.
RAMP_DAYS_GAMMA = (4.0, 2.0)  # shape, scale of the days from an episode's start to its peak
RAMP_EXPONENT = 1.0  # intent = height * (fraction of the ramp) ** RAMP_EXPONENT
DECAY_DAYS = 0.8  # mean time constant of the intent's decay after the peak (gamma, shape 2)
BACKGROUND_INTENT = 0.02  # below this a session is plain browsing, not part of an episode
# Sessions per day = weekday * (activity * (1 + SESSION_INTENT_BOOST * intent) + INTENT_SESSIONS * intent):
# intent multiplies a user's usual activity, and also brings even a rare visitor back to the shop.
SESSION_INTENT_BOOST = 3.0
INTENT_SESSIONS = 1.0
# Blocks per session = 1 + Poisson(a + b * intent).
BLOCKS_PER_SESSION = (1.5, 5.0)
# Block mix: probability = a + b * intent for (search, cart, favourite); views fill the rest.
BLOCK_P: dict[str, tuple[float, float]] = {
    "search": (0.07, 0.13),
    "cart": (0.03, 0.22),
    "favorite": (0.03, 0.04),
}
MIXED_SESSION_P = 0.6  # share of sessions that may hold both searches and carts (see _block_types)
# Purchases.
PATTERN_WINDOW_MINUTES = 10.0
PATTERN_PURCHASE_P = 0.9  # chance that a search->cart session leads to buying the carted item ...
PATTERN_DELAY_DAYS = 2.5  # ... this many days later on average (gamma): rarely within a day, so at a
PATTERN_DELAY_SHAPE = 4.0  # cutoff a recent search->cart is almost always still waiting for its purchase
EPISODE_CONVERSION = 0.55  # times propensity * peak height, for episodes no pattern purchase ended
IMPULSE_PURCHASES_PER_SESSION = 0.005  # times propensity; purchases nobody can foresee
# Query wording (_search_queries): a buyer's searches run this many levels more specific; other searches
# never get past brand wording ("nike shoes"), so model names and "buy ..." come from buyers only.
BUYER_QUERY_LIFT = 1.5
BROWSER_QUERY_LEVEL = 1

# Simulation time is in days since `start` (float64); output is rounded down to milliseconds.

# Monday..Sunday: weekends busier.
WEEKDAY_WEIGHT = np.array([0.9, 0.9, 0.95, 1.0, 1.05, 1.25, 1.3])
WEEKDAY_WEIGHT = WEEKDAY_WEIGHT / WEEKDAY_WEIGHT.mean()
# Hour of day: quiet nights, evening peak.
HOUR_WEIGHT = np.array(
    [0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.7, 1.0, 1.1, 1.1, 1.2,
     1.3, 1.2, 1.1, 1.1, 1.2, 1.4, 1.7, 2.0, 2.2, 2.0, 1.5, 0.9]
)  # fmt: skip

# Event type codes follow schema.EVENT_TYPES.
VIEW, CART, REMOVE, FAVORITE, PURCHASE, SEARCH = range(6)
assert EVENT_TYPES == ("view", "cart", "remove_from_cart", "favorite", "purchase", "search")
# Session building blocks and the events each expands to (a cart block's remove is optional).
B_VIEW, B_SEARCH, B_CART, B_FAVORITE = range(4)
BLOCK_EVENTS = np.array(
    [[VIEW, -1, -1], [SEARCH, -1, -1], [VIEW, CART, REMOVE], [VIEW, FAVORITE, -1]], dtype=np.int8
)
REMOVE_P = 0.3

# (category, generic search term, median price, {brand: models}); brands listed most popular first.
CATALOG_SPEC: tuple[tuple[str, str, float, dict[str, tuple[str, ...]]], ...] = (
    ("electronics.smartphone", "smartphone", 450.0, {
        "apple": ("iphone 13", "iphone 14", "iphone 15", "iphone 15 pro"),
        "samsung": ("galaxy s23", "galaxy s24", "galaxy a54"),
        "xiaomi": ("redmi note 12", "redmi 13c", "poco x6"),
        "google": ("pixel 7a", "pixel 8"),
    }),
    ("electronics.audio.headphone", "headphones", 110.0, {
        "apple": ("airpods pro", "airpods 3", "airpods max"),
        "sony": ("wh-1000xm5", "wf-1000xm4", "wh-ch520"),
        "jbl": ("tune 510bt", "live 660nc"),
        "bose": ("quietcomfort 45", "quietcomfort earbuds"),
    }),
    ("electronics.clocks", "smartwatch", 240.0, {
        "apple": ("watch series 9", "watch se"),
        "samsung": ("galaxy watch 6", "galaxy watch 5"),
        "garmin": ("forerunner 255", "fenix 7", "venu 2"),
        "huawei": ("watch gt 4",),
    }),
    ("electronics.video.tv", "tv", 600.0, {
        "samsung": ("qled q60c", "crystal uhd au7100", "neo qled qn90c"),
        "lg": ("oled c3", "nanocell 75"),
        "sony": ("bravia x80k", "bravia a80l"),
        "tcl": ("c745", "p635"),
    }),
    ("computers.notebook", "laptop", 900.0, {
        "apple": ("macbook air m2", "macbook pro 14"),
        "lenovo": ("thinkpad x1 carbon", "ideapad 5", "legion 5"),
        "hp": ("pavilion 15", "envy x360"),
        "asus": ("zenbook 14", "rog strix g16", "vivobook 15"),
    }),
    ("computers.peripherals.mouse", "mouse", 45.0, {
        "logitech": ("mx master 3s", "g502 hero", "m185"),
        "razer": ("deathadder v3", "basilisk v3"),
        "apple": ("magic mouse",),
    }),
    ("computers.peripherals.keyboard", "keyboard", 70.0, {
        "logitech": ("mx keys", "k380", "g915"),
        "razer": ("blackwidow v4", "huntsman mini"),
        "keychron": ("k2", "q1"),
    }),
    ("appliances.kitchen.coffee_machine", "coffee machine", 300.0, {
        "delonghi": ("magnifica s", "dedica ec685", "dinamica plus"),
        "philips": ("3200 lattego", "2200"),
        "nespresso": ("vertuo next", "essenza mini"),
        "krups": ("evidence",),
    }),
    ("appliances.kitchen.blender", "blender", 80.0, {
        "nutribullet": ("pro 900", "600"),
        "philips": ("3000 series", "5000 series"),
        "vitamix": ("e310", "a3500"),
        "bosch": ("vitastyle",),
    }),
    ("appliances.environment.vacuum", "vacuum cleaner", 320.0, {
        "dyson": ("v15 detect", "v8", "v12 slim"),
        "xiaomi": ("robot vacuum s10", "mi vacuum g10"),
        "irobot": ("roomba j7", "roomba 694"),
        "samsung": ("jet 75",),
    }),
    ("apparel.shoes", "shoes", 110.0, {
        "nike": ("air max 90", "air force 1", "pegasus 40", "dunk low"),
        "adidas": ("ultraboost 22", "stan smith", "samba og"),
        "puma": ("suede classic", "rs-x"),
        "new balance": ("574", "990v6"),
    }),
    ("apparel.jacket", "jacket", 160.0, {
        "the north face": ("nuptse", "resolve 2"),
        "columbia": ("watertight ii", "powder lite"),
        "patagonia": ("nano puff", "down sweater"),
    }),
    ("apparel.jeans", "jeans", 70.0, {
        "levis": ("501", "511 slim", "550 relaxed"),
        "wrangler": ("texas", "regular fit"),
        "lee": ("brooklyn", "rider"),
    }),
    ("sport.bicycle", "bicycle", 700.0, {
        "trek": ("marlin 5", "fx 2"),
        "giant": ("talon 3", "escape 3"),
        "cube": ("aim race", "nature"),
    }),
    ("kids.toys", "toys", 40.0, {
        "lego": ("classic 11021", "technic 42154", "city 60337"),
        "hasbro": ("monopoly", "nerf elite 2.0"),
        "mattel": ("barbie dreamhouse", "hot wheels track"),
    }),
    ("furniture.living_room.sofa", "sofa", 650.0, {
        "ikea": ("kivik", "ektorp", "friheten"),
        "westwing": ("lennon",),
        "made": ("scott",),
    }),
    ("beauty.fragrance", "perfume", 90.0, {
        "chanel": ("no 5", "bleu de chanel"),
        "dior": ("sauvage", "j'adore"),
        "versace": ("eros", "bright crystal"),
    }),
    ("construction.tools.drill", "drill", 130.0, {
        "bosch": ("gsr 12v", "psb 1800"),
        "makita": ("dhp482", "hp1631"),
        "dewalt": ("dcd796", "dcd771"),
    }),
)  # fmt: skip


# ---- public API -----------------------------------------------------------------------------------------
def generate_events(
    users: int,
    days: int,
    seed: int,
    start: str = "2024-01-01",
    *,
    order_effect: bool = True,
    query_signal: bool = True,
) -> pd.DataFrame:
    """Generate canonical shop events for `users` users over `days` days from `start` (UTC midnight).

    Same arguments give an identical frame. The result is sorted by event time and passes
    `registry.events.schema.conform`. User ids are 1..users. See the module docstring for the story;
    `order_effect=False` / `query_signal=False` remove one planted signal each (see "Ablations" there).
    """
    signals = _Signals(order_effect=order_effect, query_signal=query_signal)
    if users < 1 or days < 1:
        raise ValueError(f"generate_events needs users >= 1 and days >= 1, got users={users}, days={days}")
    origin = pd.Timestamp(start, tz="UTC").normalize()
    catalog = _catalog()
    firsts = range(0, users, USERS_PER_CHUNK)
    seeds = np.random.SeedSequence(seed).spawn(len(firsts))
    parts = [
        _simulate(
            first, min(USERS_PER_CHUNK, users - first), days, origin.dayofweek, catalog, chunk_seed, signals
        )
        for first, chunk_seed in zip(firsts, seeds, strict=True)
    ]
    frame = _assemble(parts, catalog, origin)
    del parts  # conform copies every column; free the chunks first (~350 MB at ten million events)
    return conform(frame)


def _simulate(
    first_user: int,
    n_users: int,
    days: int,
    first_weekday: int,
    catalog: _Catalog,
    seed: np.random.SeedSequence,
    signals: _Signals,
) -> _Rows:
    """The whole story for one chunk of users (they do not interact, so chunks are independent)."""
    rng = _Streams(seed)
    people = _draw_users(n_users, catalog, rng.users)
    episodes = _draw_episodes(people, catalog, -WARMUP_DAYS, days, rng.episodes)
    converts = _episode_fates(people, episodes, rng.fates)
    grid = _daily_intent(episodes, n_users, -WARMUP_DAYS, days)
    sessions = _draw_sessions(people, episodes, grid, first_weekday, rng.sessions)
    shuffle = None if signals.query_signal else rng.ablation
    browsing = _draw_browsing(sessions, people, episodes, converts, catalog, rng.blocks, shuffle)
    purchases = _decide_purchases(
        browsing, sessions, people, episodes, converts, catalog, grid, rng.purchases, signals.order_effect
    )
    events, sessions = _add_purchase_sessions(browsing, sessions, purchases, catalog, rng.purchases)
    return _rows(events, sessions, first_user, days)


@dataclass(frozen=True)
class _Signals:
    """Which planted signals are on (all by default; see "Ablations" in the module docstring)."""

    order_effect: bool = True
    query_signal: bool = True


# ---- random streams -------------------------------------------------------------------------------------
class _Streams:
    """One independent generator per stage, so tuning one stage does not reshuffle the others."""

    def __init__(self, seed: np.random.SeedSequence) -> None:
        # Children are keyed by their index, so a new stream leaves the earlier ones as they were. The
        # ablation stream draws only when a signal is switched off, and never moves the other streams.
        users, episodes, sessions, blocks, purchases, ablation, fates = seed.spawn(7)
        self.ablation = np.random.default_rng(ablation)
        self.fates = np.random.default_rng(fates)
        self.users = np.random.default_rng(users)
        self.episodes = np.random.default_rng(episodes)
        self.sessions = np.random.default_rng(sessions)
        self.blocks = np.random.default_rng(blocks)
        self.purchases = np.random.default_rng(purchases)


def _grouped_cdf(weights: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group CDFs of `weights` laid end to end and shifted by the group index (group g lies in (g, g+1]).

    This lets `_sample_grouped` draw from many different discrete distributions with one searchsorted.
    """
    totals = np.bincount(group, weights=weights, minlength=n_groups)
    within = np.cumsum(weights) - np.repeat(
        np.cumsum(totals) - totals, np.bincount(group, minlength=n_groups)
    )
    cdf = group + within / totals[group]
    last = np.r_[group[1:] != group[:-1], True]
    cdf[last] = group[last] + 1.0  # exact upper edge, immune to rounding
    return cdf


def _sample_grouped(cdf: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one index into `cdf` per entry of `group`, from that group's distribution."""
    # Shrinking r a hair keeps group + r below group + 1 after rounding, even for large group indices.
    idx = np.searchsorted(cdf, group + rng.random(len(group)) * (1.0 - 1e-9), side="right")
    return np.minimum(idx, len(cdf) - 1)


# ---- catalog --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Catalog:
    categories: np.ndarray  # category names (object)
    brand_names: np.ndarray  # distinct brand names (object)
    brand_category: np.ndarray  # per (category, brand) pair "brand slot" -> category
    brand_name: np.ndarray  # brand slot -> index into brand_names
    brand_cdf: np.ndarray  # popularity CDF of brand slots, grouped by category
    brand_models: np.ndarray  # brand slot -> [first model, end)
    model_items: np.ndarray  # model -> [first item, end)
    model_brand: np.ndarray  # model -> brand slot
    item_model: np.ndarray
    item_category: np.ndarray
    item_brand: np.ndarray  # item -> index into brand_names
    item_price: np.ndarray
    item_id: np.ndarray
    queries: np.ndarray  # query vocabulary (object)
    query_term: np.ndarray  # category -> "shoes"
    query_brand: np.ndarray  # brand slot -> "nike shoes"
    query_model: np.ndarray  # model -> "nike air max 90"
    query_buy: np.ndarray  # (model, 2) -> "buy nike air max 90", "nike air max 90 price"

    @property
    def n_categories(self) -> int:
        return len(self.categories)


@functools.cache
def _catalog() -> _Catalog:
    """Build the catalog from CATALOG_SPEC. Prices use a fixed seed so item prices are the same in every
    generated data set (a model trained on one seed sees the same catalog in another)."""
    rng = np.random.default_rng(20240101)
    vocab: dict[str, int] = {}

    def q(text: str) -> int:
        return vocab.setdefault(text, len(vocab))

    brand_index: dict[str, int] = {}
    brand_category: list[int]  # read (len) before the first append: declared for mypy
    model_brand: list[int]
    brand_category, brand_name, brand_weight, model_brand, query_brand = [], [], [], [], []
    query_term, query_model, query_buy = [], [], []
    item_model, item_price = [], []
    for c, (_, term, median, brands) in enumerate(CATALOG_SPEC):
        query_term.append(q(term))
        for rank, (brand, models) in enumerate(brands.items()):
            slot = len(brand_category)
            brand_category.append(c)
            brand_name.append(brand_index.setdefault(brand, len(brand_index)))
            brand_weight.append(1.0 / (rank + 1) ** 0.8)
            query_brand.append(q(f"{brand} {term}"))
            for model in models:
                m = len(model_brand)
                model_brand.append(slot)
                query_model.append(q(f"{brand} {model}"))
                query_buy.append((q(f"buy {brand} {model}"), q(f"{brand} {model} price")))
                base = median * np.exp(rng.normal(0.0, 0.45))
                for variant in range(int(rng.integers(1, 4))):  # colours / storage sizes
                    item_model.append(m)
                    item_price.append(round(base * (1.0 + 0.12 * variant), 2))
    brand_category_a = np.array(brand_category)
    model_brand_a = np.array(model_brand)
    item_model_a = np.array(item_model)
    brand_slot_of_item = model_brand_a[item_model_a]
    n_items = len(item_model_a)
    return _Catalog(
        categories=np.array([spec[0] for spec in CATALOG_SPEC], dtype=object),
        brand_names=np.array(list(brand_index), dtype=object),
        brand_category=brand_category_a,
        brand_name=np.array(brand_name),
        brand_cdf=_grouped_cdf(np.array(brand_weight), brand_category_a, len(CATALOG_SPEC)),
        brand_models=_ranges(model_brand_a, len(brand_category_a)),
        model_items=_ranges(item_model_a, len(model_brand_a)),
        model_brand=model_brand_a,
        item_model=item_model_a,
        item_category=brand_category_a[brand_slot_of_item],
        item_brand=np.array(brand_name)[brand_slot_of_item],
        item_price=np.array(item_price),
        item_id=100_001 + np.arange(n_items, dtype=np.int64),
        queries=np.array(list(vocab), dtype=object),
        query_term=np.array(query_term),
        query_brand=np.array(query_brand),
        query_model=np.array(query_model),
        query_buy=np.array(query_buy),
    )


def _ranges(owner: np.ndarray, n_owners: int) -> np.ndarray:
    """For a sorted `owner` array, the (n_owners, 2) [first, end) index range of each owner."""
    ends = np.cumsum(np.bincount(owner, minlength=n_owners))
    return np.stack([ends - np.bincount(owner, minlength=n_owners), ends], axis=1)


def _pick_in_range(ranges: np.ndarray, owner: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniform index in each owner's [first, end) range."""
    first, end = ranges[owner, 0], ranges[owner, 1]
    return first + (rng.random(len(owner)) * (end - first)).astype(np.int64)


def _items_of_brand(catalog: _Catalog, brand_slot: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random item (uniform model, uniform variant) of each brand slot."""
    model = _pick_in_range(catalog.brand_models, brand_slot, rng)
    return _pick_in_range(catalog.model_items, model, rng)


# ---- users ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Users:
    activity: np.ndarray  # sessions per day at zero intent
    episode_rate: np.ndarray  # intent episodes per day
    propensity: np.ndarray  # multiplies episode conversion and impulse-buy rates
    category_cdf: np.ndarray  # flat (users * categories) CDF grouped by user
    favourite_brand: np.ndarray  # (users, categories) brand slot

    def __len__(self) -> int:
        return len(self.activity)


def _draw_users(n: int, catalog: _Catalog, rng: np.random.Generator) -> _Users:
    n_cat = catalog.n_categories
    activity = rng.lognormal(np.log(ACTIVITY_MEDIAN), 0.9, n)
    # Busy users have more buying episodes, but only loosely (power 0.4): activity alone is not the label.
    episode_rate = EPISODES_PER_DAY * (activity / ACTIVITY_MEDIAN) ** 0.4 * rng.gamma(2.0, 0.5, n)
    propensity = np.minimum(rng.lognormal(0.0, 0.35, n), 1.8)
    # Sparse preferences: a few categories dominate each user's browsing. Popularity differs by category.
    popularity = np.linspace(1.5, 0.5, n_cat)
    prefs = rng.gamma(np.tile(0.35 * popularity, (n, 1)))
    user_of_cell = np.repeat(np.arange(n), n_cat)
    category_cdf = _grouped_cdf(prefs.ravel() + 1e-12, user_of_cell, n)
    slots = _sample_grouped(catalog.brand_cdf, np.tile(np.arange(n_cat), n), rng).reshape(n, n_cat)
    return _Users(activity, episode_rate, propensity, category_cdf, slots)


def _preferred_category(people: _Users, user: np.ndarray, rng: np.random.Generator, n_cat: int) -> np.ndarray:
    return _sample_grouped(people.category_cdf, user, rng) - user * n_cat


def _browse_items(
    people: _Users, catalog: _Catalog, user: np.ndarray, category: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Items a user browses in a category outside any target: favourite brand 45% of the time, else popular
    brands."""
    popular = _sample_grouped(catalog.brand_cdf, category, rng)
    favourite = people.favourite_brand[user, category]
    slot = np.where(rng.random(len(user)) < 0.45, favourite, popular)
    return _items_of_brand(catalog, slot, rng)


# ---- intent episodes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Episodes:
    user: np.ndarray
    start: np.ndarray  # days since `start`
    ramp: np.ndarray  # days from start to peak
    height: np.ndarray  # peak intent in (0, 1)
    decay: np.ndarray  # days, exponential decay after the peak
    category: np.ndarray
    item: np.ndarray  # the target item

    @property
    def peak(self) -> np.ndarray:
        return self.start + self.ramp


def _draw_episodes(
    people: _Users, catalog: _Catalog, t0: float, t1: float, rng: np.random.Generator
) -> _Episodes:
    # Episodes that started up to 20 days before t0 still shape intent at t0.
    lead = 20.0
    counts = rng.poisson(people.episode_rate * (t1 - t0 + lead))
    user = np.repeat(np.arange(len(people)), counts)
    n = len(user)
    category = _preferred_category(people, user, rng, catalog.n_categories)
    # The target brand is usually the user's favourite in that category.
    slot = np.where(
        rng.random(n) < 0.6,
        people.favourite_brand[user, category],
        _sample_grouped(catalog.brand_cdf, category, rng),
    )
    return _Episodes(
        user=user,
        start=rng.uniform(t0 - lead, t1, n),
        ramp=np.clip(rng.gamma(*RAMP_DAYS_GAMMA, n), 0.5, 15.0),
        height=rng.beta(4.0, 2.0, n),
        decay=np.clip(rng.gamma(2.0, DECAY_DAYS / 2.0, n), 0.2, 5.0),
        category=category,
        item=_items_of_brand(catalog, slot, rng),
    )


def _episode_fates(people: _Users, episodes: _Episodes, rng: np.random.Generator) -> np.ndarray:
    """Whether each episode converts at its peak (unless a search->cart purchase ends it first), drawn when
    it starts: the buyer knows what they are after, and that shows in their searches (_search_queries)."""
    p_convert = np.minimum(EPISODE_CONVERSION * people.propensity[episodes.user] * episodes.height, 0.9)
    return rng.random(len(p_convert)) < p_convert


def _intent_at(episodes: _Episodes, episode: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Intent of `episode` at time `t` (days); 0 before the episode starts."""
    start, ramp, height = episodes.start[episode], episodes.ramp[episode], episodes.height[episode]
    since = t - start
    rising = height * np.clip(since / ramp, 0.0, 1.0) ** RAMP_EXPONENT
    falling = height * np.exp(-np.maximum(since - ramp, 0.0) / episodes.decay[episode])
    return np.where(since < ramp, rising, falling) * (since >= 0)


@dataclass(frozen=True)
class _Grid:
    """Per (user, day) cell: the strongest episode's intent at midday and that episode (-1: none)."""

    first_day: int
    n_days: int
    intent: np.ndarray  # (users * n_days,)
    episode: np.ndarray


def _daily_intent(episodes: _Episodes, n_users: int, t0: int, t1: int) -> _Grid:
    n_days = t1 - t0
    # Each episode touches the days from its start until its intent has decayed to ~1% of the peak.
    lo = np.clip(np.floor(episodes.start).astype(np.int64), t0, t1)
    hi = np.clip(np.ceil(episodes.peak + 4.6 * episodes.decay).astype(np.int64), t0, t1)
    span = hi - lo
    episode = np.repeat(np.arange(len(span)), span)
    day = lo[episode] + _ragged_arange(span)
    intent = _intent_at(episodes, episode, day + 0.5)
    cell = episodes.user[episode] * n_days + (day - t0)
    # Keep the strongest episode per cell (ties, which need equal floats, go to the later episode).
    grid_intent = np.zeros(n_users * n_days)
    np.maximum.at(grid_intent, cell, intent)
    strongest = (intent > 0) & (intent >= grid_intent[cell])
    grid_episode = np.full(n_users * n_days, -1, dtype=np.int64)
    grid_episode[cell[strongest]] = episode[strongest]
    return _Grid(t0, n_days, grid_intent, grid_episode)


def _ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges: [3, 2] -> [0, 1, 2, 0, 1]."""
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - starts


# ---- sessions -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sessions:
    user: np.ndarray
    start: np.ndarray  # days
    episode: np.ndarray  # -1: plain browsing
    intent: np.ndarray  # intent at the session start (0 for plain browsing)


def _draw_sessions(
    people: _Users, episodes: _Episodes, grid: _Grid, first_weekday: int, rng: np.random.Generator
) -> _Sessions:
    n_users = len(people)
    day = np.tile(np.arange(grid.first_day, grid.first_day + grid.n_days), n_users)
    weekday = WEEKDAY_WEIGHT[(first_weekday + day) % 7]
    activity = np.repeat(people.activity, grid.n_days)
    rate = weekday * (activity * (1.0 + SESSION_INTENT_BOOST * grid.intent) + INTENT_SESSIONS * grid.intent)
    counts = rng.poisson(rate)
    cell = np.repeat(np.arange(len(counts)), counts)
    start = day[cell] + _time_of_day(len(cell), rng)
    episode = grid.episode[cell]
    linked = np.flatnonzero(episode >= 0)
    intent = np.zeros(len(cell))
    intent[linked] = _intent_at(episodes, episode[linked], start[linked])
    episode = np.where(intent >= BACKGROUND_INTENT, episode, -1)
    intent = np.where(episode >= 0, intent, 0.0)
    return _Sessions(cell // grid.n_days, start, episode, intent)


def _time_of_day(n: int, rng: np.random.Generator) -> np.ndarray:
    """Fractions of a day following HOUR_WEIGHT (evening-heavy), uniform within the hour."""
    cdf = np.cumsum(HOUR_WEIGHT) / HOUR_WEIGHT.sum()
    hour = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), 23)
    return (hour + rng.random(n)) / 24.0


# ---- browsing events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Events:
    """Event arrays in session order (times strictly increase within a session)."""

    session: np.ndarray
    time: np.ndarray  # days
    type: np.ndarray  # int8 code into EVENT_TYPES
    item: np.ndarray  # catalog item index, -1: none
    category: np.ndarray  # category index, -1: none
    query: np.ndarray  # query vocabulary index, -1: none
    quantity: np.ndarray  # 0: none

    # Compact dtypes: at ten million events every byte per row is 10 MB.
    DTYPES: ClassVar[dict[str, builtins.type]] = {  # builtins: `type` is a field here
        "session": np.int32, "time": np.float64, "type": np.int8, "item": np.int32, "category": np.int16,
        "query": np.int32, "quantity": np.int16,
    }  # fmt: skip

    def __post_init__(self) -> None:
        for name, dtype in self.DTYPES.items():
            object.__setattr__(self, name, np.asarray(getattr(self, name)).astype(dtype, copy=False))

    def take(self, index: np.ndarray) -> _Events:
        return _Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[_Events]) -> _Events:
        return _Events(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Events)}
        )


def _draw_browsing(
    sessions: _Sessions,
    people: _Users,
    episodes: _Episodes,
    converts: np.ndarray,
    catalog: _Catalog,
    rng: np.random.Generator,
    shuffle_queries: np.random.Generator | None = None,
) -> _Events:
    """Blocks per session (their mix, category and item follow the session's intent), expanded to events.

    With `shuffle_queries` (the query_signal=False ablation), each search words its query by the intent and
    the episode's fate of another search, a random permutation drawn from that generator."""
    n_blocks = 1 + rng.poisson(BLOCKS_PER_SESSION[0] + BLOCKS_PER_SESSION[1] * sessions.intent)
    session = np.repeat(np.arange(len(n_blocks)), n_blocks)
    intent = sessions.intent[session]
    block = _block_types(session, intent, rng)
    category, item, on_target = _block_targets(session, sessions, people, episodes, catalog, rng)
    # Only search blocks need text; a search off the episode's target reads like one at zero intent.
    query = np.full(len(block), -1, dtype=np.int64)
    search = np.flatnonzero(block == B_SEARCH)
    query_intent = np.where(on_target[search], intent[search], 0.0)
    episode = sessions.episode[session[search]]
    # A buyer is on target in an episode that will convert and has not yet reached its peak (the purchase).
    buyer = on_target[search] & (episode >= 0)
    before_peak = sessions.start[session[search[buyer]]] < episodes.peak[episode[buyer]]
    buyer[buyer] = converts[episode[buyer]] & before_peak
    if shuffle_queries is not None:
        swap = shuffle_queries.permutation(len(search))
        query_intent, buyer = query_intent[swap], buyer[swap]
    query[search] = _search_queries(query_intent, buyer, item[search], catalog, rng)
    remove = (block == B_CART) & (rng.random(len(block)) < REMOVE_P)
    quantity = rng.geometric(0.85, len(block))  # mostly 1, sometimes 2 or more
    return _expand_blocks(session, block, remove, category, item, query, quantity, sessions.start, rng)


def _block_types(session: np.ndarray, intent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Searches and carts become likelier as intent rises; favourites a little; views fill the rest.

    Most sessions are either research (searches, no carts) or shopping (carts, no searches), with twice the
    rate so the expected counts do not change; only MIXED_SESSION_P of sessions hold both. That keeps the
    search->cart pattern a distinct event rather than something every keen shopper does by chance.
    """
    n_sessions = int(session.max()) + 1 if len(session) else 0
    kind = rng.random(n_sessions)
    research = kind < (1.0 - MIXED_SESSION_P) / 2
    shopping = ~research & (kind < 1.0 - MIXED_SESSION_P)
    search_factor = np.where(research, 2.0, np.where(shopping, 0.0, 1.0))[session]
    cart_factor = np.where(shopping, 2.0, np.where(research, 0.0, 1.0))[session]
    p_search, p_cart, p_fav = (BLOCK_P[k][0] + BLOCK_P[k][1] * intent for k in ("search", "cart", "favorite"))
    p_search, p_cart = p_search * search_factor, p_cart * cart_factor
    r = rng.random(len(intent))
    block = np.full(len(intent), B_VIEW, dtype=np.int8)
    block[r < p_search + p_cart + p_fav] = B_FAVORITE
    block[r < p_search + p_cart] = B_CART
    block[r < p_search] = B_SEARCH
    return block


def _block_targets(
    session: np.ndarray,
    sessions: _Sessions,
    people: _Users,
    episodes: _Episodes,
    catalog: _Catalog,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Category and item of each block; in an episode they drift to the target as intent rises."""
    n = len(session)
    user = sessions.user[session]
    intent = sessions.intent[session]
    episode = sessions.episode[session]
    on_target = (episode >= 0) & (rng.random(n) < 0.25 + 0.65 * intent)
    category = _preferred_category(people, user, rng, catalog.n_categories)
    category[on_target] = episodes.category[episode[on_target]]
    item = _browse_items(people, catalog, user, category, rng)
    # On target: the very item with probability ~0.8 * intent, else often another item of the target brand.
    target = np.flatnonzero(on_target)
    target_item = episodes.item[episode[target]]
    same_brand = _items_of_brand(catalog, catalog.model_brand[catalog.item_model[target_item]], rng)
    r = rng.random(len(target))
    level = intent[target]
    item[target] = np.where(
        r < 0.8 * level, target_item, np.where(r < 0.3 + 0.4 * level, same_brand, item[target])
    )
    return category, item, on_target


def _search_queries(
    intent: np.ndarray, buyer: np.ndarray, item: np.ndarray, catalog: _Catalog, rng: np.random.Generator
) -> np.ndarray:
    """Query text code per block: level floor(4 * intent + BUYER_QUERY_LIFT + noise) picks generic / brand /
    model / buy wording for a buyer (an episode that will convert); other searches stop at
    BROWSER_QUERY_LEVEL."""
    n = len(intent)
    lift = np.where(buyer, BUYER_QUERY_LIFT, 0.0)
    level = np.clip(np.floor(4.0 * intent + lift + rng.normal(0.0, 0.7, n)), 0, 3).astype(np.int8)
    level = np.where(buyer, level, np.minimum(level, BROWSER_QUERY_LEVEL))
    model = catalog.item_model[item]
    slot = catalog.model_brand[model]
    buy = catalog.query_buy[model, rng.integers(0, 2, n)]
    choices = [catalog.query_term[catalog.brand_category[slot]], catalog.query_brand[slot],
               catalog.query_model[model], buy]  # fmt: skip
    return np.choose(level, choices)


def _expand_blocks(
    session: np.ndarray,
    block: np.ndarray,
    remove: np.ndarray,
    category: np.ndarray,
    item: np.ndarray,
    query: np.ndarray,
    quantity: np.ndarray,
    session_start: np.ndarray,
    rng: np.random.Generator,
) -> _Events:
    """Blocks -> events with realistic gaps: ~50 s between pages, ~25 s view->cart, ~2 min before a remove."""
    n_events = np.select([block == B_CART, block == B_FAVORITE], [2 + remove, 2], 1)
    src = np.repeat(np.arange(len(block)), n_events)
    pos = _ragged_arange(n_events)
    etype = BLOCK_EVENTS[block[src], pos]
    is_search = etype == SEARCH
    gap_median = np.select([pos == 0, etype == REMOVE], [50.0, 120.0], 25.0)
    gap = _lognormal_gaps(gap_median, 0.8, rng)
    ev_session = session[src]
    first = _group_starts(ev_session)
    gap[first] = 0.0
    gap[~first] = np.maximum(gap[~first], 1.0 / 86_400.0)  # at least a second: order is never ambiguous
    since_start = _cumsum_within(gap, first)
    has_cart_qty = (etype == CART) | (etype == REMOVE)
    return _Events(
        session=ev_session,
        time=session_start[ev_session] + since_start,
        type=etype,
        item=np.where(is_search, -1, item[src]),
        category=category[src],
        query=np.where(is_search, query[src], -1),
        quantity=np.where(has_cart_qty, quantity[src], 0),
    )


def _lognormal_gaps(median_s: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaps in days, lognormal around `median_s` seconds, capped at 30 minutes (longer is a new session).
    float32 noise: plenty for gaps, half the cost at ten million events."""
    noise = np.exp(sigma * rng.standard_normal(len(median_s), dtype=np.float32))
    return np.minimum(median_s * noise, 1800.0) / 86_400.0


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """True where a run of equal `keys` begins (right for empty input too)."""
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    return starts


def _cumsum_within(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every `first` (groups are contiguous)."""
    total = np.cumsum(values)
    group_start = np.flatnonzero(first)
    offset = np.repeat(total[group_start] - values[group_start], np.diff(np.r_[group_start, len(values)]))
    return total - offset


# ---- the order effect and purchases ---------------------------------------------------------------------
def _search_then_cart(events: _Events, session_start: np.ndarray, n_categories: int) -> np.ndarray:
    """Indices of carts with a search for the same category earlier in the same session, at most
    PATTERN_WINDOW_MINUTES before. One searchsorted over (session, category, time) keys, no Python loop."""
    is_search = events.type == SEARCH
    key = events.session.astype(np.int64) * n_categories + np.maximum(events.category, 0)
    # Milliseconds since the session start are small, so (key, ms) packs exactly into one int64.
    ms = np.round((events.time - session_start[events.session]) * 86_400_000).astype(np.int64)
    scale = int(ms.max()) + 1 if len(ms) else 1
    composite = key * scale + ms
    searches = np.sort(composite[is_search])
    carts = np.flatnonzero(events.type == CART)
    prev = np.searchsorted(searches, composite[carts], side="left") - 1  # latest earlier search, any key
    prev_val = searches[np.maximum(prev, 0)] if len(searches) else np.zeros(len(carts), dtype=np.int64)
    same_key = (prev >= 0) & (prev_val // scale == key[carts])
    close = (ms[carts] - prev_val % scale) <= PATTERN_WINDOW_MINUTES * 60_000
    return carts[same_key & close]


@dataclass(frozen=True)
class _Purchases:
    user: np.ndarray
    time: np.ndarray
    item: np.ndarray


def _decide_purchases(
    browsing: _Events,
    sessions: _Sessions,
    people: _Users,
    episodes: _Episodes,
    converts: np.ndarray,
    catalog: _Catalog,
    grid: _Grid,
    rng: np.random.Generator,
    order_effect: bool = True,
) -> _Purchases:
    """Purchases triggered by the search->cart pattern, episode conversions at the peak, impulse buys.

    `order_effect=False` drops the pattern's purchases after drawing them, so every later draw is the one
    the default run makes and the ablated shop differs only by the signal."""
    pattern = browsing.take(_search_then_cart(browsing, sessions.start, catalog.n_categories))
    # One trigger per session: several pattern carts in a session do not multiply the effect.
    _, first = np.unique(pattern.session, return_index=True)
    pattern = pattern.take(first)
    triggered = rng.random(len(pattern.item)) < PATTERN_PURCHASE_P
    pattern = pattern.take(np.flatnonzero(triggered))
    bought_at = pattern.time + rng.gamma(
        PATTERN_DELAY_SHAPE, PATTERN_DELAY_DAYS / PATTERN_DELAY_SHAPE, len(pattern.item)
    )
    if not order_effect:
        none = np.zeros(0, dtype=np.int64)
        pattern, bought_at = pattern.take(none), bought_at[none]

    # An episode whose pattern purchase came before its peak is over: it does not convert again at the peak.
    episode = sessions.episode[pattern.session]
    linked = np.flatnonzero(episode >= 0)
    early = linked[bought_at[linked] < episodes.peak[episode[linked]]]
    done = np.zeros(len(episodes.user), dtype=bool)
    done[episode[early]] = True
    converts = converts & ~done

    impulse_user, impulse_time = _impulse_times(people, grid, rng)
    impulse_category = _preferred_category(people, impulse_user, rng, catalog.n_categories)
    impulse_item = _browse_items(people, catalog, impulse_user, impulse_category, rng)
    return _Purchases(
        user=np.concatenate([sessions.user[pattern.session], episodes.user[converts], impulse_user]),
        time=np.concatenate([bought_at, episodes.peak[converts], impulse_time]),
        item=np.concatenate([pattern.item, episodes.item[converts], impulse_item]),
    )


def _impulse_times(people: _Users, grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unforeseeable purchases: a Poisson number per user-day, proportional to activity and propensity."""
    rate = IMPULSE_PURCHASES_PER_SESSION * people.activity * people.propensity
    counts = rng.poisson(np.repeat(rate, grid.n_days))
    cell = np.repeat(np.arange(len(counts)), counts)
    day = grid.first_day + cell % grid.n_days
    return cell // grid.n_days, day + _time_of_day(len(cell), rng)


def _add_purchase_sessions(
    browsing: _Events, sessions: _Sessions, purchases: _Purchases, catalog: _Catalog, rng: np.random.Generator
) -> tuple[_Events, _Sessions]:
    """Each purchase gets its own session: 0-2 views in the category, view -> cart -> purchase of the item."""
    n = len(purchases.user)
    first_session = len(sessions.user)
    n_before = rng.integers(0, 3, n)
    n_events = n_before + 3
    src = np.repeat(np.arange(n), n_events)
    pos = _ragged_arange(n_events)
    from_end = n_events[src] - pos  # 3: view, 2: cart, 1: purchase of the bought item
    etype = np.select([from_end == 2, from_end == 1], [CART, PURCHASE], VIEW).astype(np.int8)
    item = purchases.item[src]
    category = catalog.item_category[item]
    other = _items_of_brand(catalog, _sample_grouped(catalog.brand_cdf, category, rng), rng)
    item = np.where(from_end > 3, other, item)
    gap_median = np.where(etype == PURCHASE, 180.0, 40.0)
    gap = _lognormal_gaps(gap_median, 0.7, rng)
    first = pos == 0
    gap[first] = 0.0
    gap[~first] = np.maximum(gap[~first], 1.0 / 86_400.0)
    # The session starts at the scheduled time; the purchase itself follows a few minutes later.
    quantity = rng.geometric(0.85, n)
    events = _Events(
        session=first_session + src,
        time=purchases.time[src] + _cumsum_within(gap, first),
        type=etype,
        item=item,
        category=catalog.item_category[item],
        query=np.full(len(src), -1, dtype=np.int64),
        quantity=np.where(from_end <= 2, quantity[src], 0),
    )
    all_sessions = _Sessions(
        user=np.concatenate([sessions.user, purchases.user]),
        start=np.concatenate([sessions.start, purchases.time]),
        episode=np.concatenate([sessions.episode, np.full(n, -1)]),
        intent=np.concatenate([sessions.intent, np.zeros(n)]),
    )
    return _Events.concat([browsing, events]), all_sessions


# ---- output ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Rows:
    """A chunk's output rows in compact form; `session` indexes the chunk's `labels`."""

    ms: np.ndarray  # milliseconds since `start`
    user: np.ndarray  # user_id
    type: np.ndarray
    item: np.ndarray  # catalog item index, -1: none
    category: np.ndarray
    query: np.ndarray
    quantity: np.ndarray
    session: np.ndarray
    labels: np.ndarray  # session_id strings (object)


def _rows(events: _Events, sessions: _Sessions, first_user: int, days: int) -> _Rows:
    """Keep sessions that begin at or after `start` and their events before `start + days`. Dropping whole
    warm-up sessions, not single events, keeps the funnel of every kept purchase intact."""
    ms = np.floor(events.time * 86_400_000).astype(np.int64)
    keep = np.flatnonzero((sessions.start[events.session] >= 0) & (ms < days * 86_400_000))
    ev = events.take(keep)
    code, labels = _session_labels(ev.session, sessions, first_user)
    return _Rows(
        ms=ms[keep],
        user=first_user + 1 + sessions.user[ev.session].astype(np.int64),
        type=ev.type,
        item=ev.item,
        category=ev.category,
        query=ev.query,
        quantity=ev.quantity,
        session=code,
        labels=labels,
    )


def _session_labels(
    session: np.ndarray, sessions: _Sessions, first_user: int
) -> tuple[np.ndarray, np.ndarray]:
    """`"<user_id>-<n>"` with n counting the user's sessions in time order, built once per used session.
    Returns each event's index into the labels, and the labels."""
    used = np.zeros(len(sessions.user), dtype=bool)
    used[session] = True
    idx = np.flatnonzero(used)
    order = idx[np.lexsort((sessions.start[idx], sessions.user[idx]))]
    user = sessions.user[order]
    first = _group_starts(user)
    number = _cumsum_within(np.ones(len(order)), first).astype(np.int64)
    text = np.dtypes.StringDType()
    user_id = (first_user + 1 + user).astype(text)
    labels = np.strings.add(np.strings.add(user_id, "-"), number.astype(text)).astype(object)
    code = np.full(len(sessions.user), -1, dtype=np.int32)
    code[order] = np.arange(len(order), dtype=np.int32)
    return code[session], labels


def _assemble(parts: list[_Rows], catalog: _Catalog, origin: pd.Timestamp) -> pd.DataFrame:
    """Merge the chunks, sort by time (stable: keeps each session's order) and build the canonical columns."""
    offsets = np.cumsum([0] + [len(p.labels) for p in parts[:-1]])
    labels = np.concatenate([p.labels for p in parts])
    session = np.concatenate([p.session + off for p, off in zip(parts, offsets, strict=True)])
    ms = np.concatenate([p.ms for p in parts])
    order = np.argsort(ms, kind="stable")
    ms, session = ms[order], session[order]

    def column(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])[order]

    item = column("item")
    has_item = item >= 0
    item = np.maximum(item, 0)
    quantity = column("quantity")
    event_time = pd.DatetimeIndex((origin.value + ms * 1_000_000).view("M8[ns]"), tz="UTC")
    return pd.DataFrame(
        {
            "event_time": pd.Series(event_time, copy=False),
            "user_id": column("user"),
            "event_type": _strings(np.array(EVENT_TYPES, dtype=object), column("type")),
            "item_id": pd.arrays.IntegerArray(catalog.item_id[item], ~has_item),
            "category": _strings(catalog.categories, column("category")),
            "brand": _strings(catalog.brand_names, np.where(has_item, catalog.item_brand[item], -1)),
            "price": np.where(has_item, catalog.item_price[item], np.nan),
            "quantity": pd.arrays.IntegerArray(quantity.astype(np.int64), quantity == 0),
            "session_id": _strings(labels, session),
            "query": _strings(catalog.queries, column("query")),
        },
        copy=False,
    )


def _strings(vocab: np.ndarray, code: np.ndarray) -> pd.Series:
    """Codes into a vocabulary -> pandas string column; code -1 is null. Shares the vocabulary's objects,
    so ten million rows cost one pointer each, not one Python string each."""
    table = np.append(vocab.astype(object), pd.NA)
    return pd.Series(pd.arrays.StringArray(table[code]), copy=False)
