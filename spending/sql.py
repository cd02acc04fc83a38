"""SQL pieces of the spend window (``SpendWindow``), for statements that read or change it.

The daily cap is checked and each call's worst case reserved in ONE statement, an upsert of
the user's window row: concurrent callers queue on that row's lock, and each computes what
is left from the row as the one before it left it (PostgreSQL evaluates an ``ON CONFLICT DO
UPDATE`` on the latest version of the row, and these expressions read nothing but that row
and the statement's clock). Reading the ledger's rows instead would see only what had
committed when the statement began, and concurrent calls could all find room.

Each piece expects a CTE named ``clock`` (``CLOCK``) in its statement. Time is the database's
(``statement_timestamp()``), so hosts with different clocks agree. The pieces are fixed text
(column names and constants of this module); every value is bound as a parameter, hence the
waivers of ruff's S608.
"""

BUCKET_SECONDS = 600
# Buckets counted: the current one and the 144 before it, so the window covers at least the
# last 24 hours (and at most ten minutes more): it may count a little more, never less.
WINDOW_BUCKETS = 86400 // BUCKET_SECONDS

CLOCK = (
    "clock AS (SELECT extract(epoch FROM statement_timestamp()) AS now, "  # noqa: S608
    f"floor(extract(epoch FROM statement_timestamp()) / {BUCKET_SECONDS})::bigint AS bucket)"
)


def window_usd(column: str) -> str:
    """What the buckets in ``column`` hold for the last day."""
    return (
        f"(SELECT COALESCE(sum(b.v::numeric), 0) FROM jsonb_each({column}) AS b(k, v) "  # noqa: S608
        f"WHERE b.k::bigint >= (SELECT bucket FROM clock) - {WINDOW_BUCKETS})"
    )


def window_pruned(column: str) -> str:
    """The buckets in ``column`` without those older than the window."""
    return (
        f"(SELECT COALESCE(jsonb_object_agg(b.k, b.v), '{{}}'::jsonb) FROM jsonb_each({column}) "  # noqa: S608
        f"AS b(k, v) WHERE b.k::bigint >= (SELECT bucket FROM clock) - {WINDOW_BUCKETS})"
    )


def window_add(column: str, cost: str) -> str:
    """The buckets in ``column`` with ``cost`` added to the current bucket."""
    bucket = "(SELECT bucket FROM clock)::text"
    return (
        f"{column} || jsonb_build_object({bucket}, "
        f"COALESCE(({column} ->> {bucket})::numeric, 0) + {cost})"
    )


def _live(alias: str) -> str:
    return f"({alias}.v ->> 'until')::numeric > (SELECT now FROM clock)"  # noqa: S608


def held_usd(column: str, *, besides: str = "''") -> str:
    """What the live reservations in ``column`` hold (leaving out the one keyed ``besides``)."""
    return (
        f"(SELECT COALESCE(sum((r.v ->> 'usd')::numeric), 0) FROM jsonb_each({column}) "  # noqa: S608
        f"AS r(k, v) WHERE {_live('r')} AND r.k <> {besides})"
    )


def held_live(column: str, *, besides: str = "''") -> str:
    """The reservations in ``column`` that are live (leaving out the one keyed ``besides``)."""
    return (
        f"(SELECT COALESCE(jsonb_object_agg(r.k, r.v), '{{}}'::jsonb) FROM jsonb_each({column}) "  # noqa: S608
        f"AS r(k, v) WHERE {_live('r')} AND r.k <> {besides})"
    )


def held_expired(column: str) -> str:
    """Whether ``column`` holds a reservation past its ``until``."""
    return f"EXISTS (SELECT 1 FROM jsonb_each({column}) AS r(k, v) WHERE NOT {_live('r')})"  # noqa: S608


def held_without_step(column: str, step: str) -> str:
    """The reservations in ``column`` other than those made for step ``step``."""
    return (
        f"(SELECT COALESCE(jsonb_object_agg(r.k, r.v), '{{}}'::jsonb) FROM jsonb_each({column}) "  # noqa: S608
        f"AS r(k, v) WHERE (r.v ->> 'step')::bigint IS DISTINCT FROM {step})"
    )


def held_for_step(column: str, step: str) -> str:
    """Whether ``column`` holds a reservation made for step ``step``."""
    return (
        f"EXISTS (SELECT 1 FROM jsonb_each({column}) AS r(k, v) "  # noqa: S608
        f"WHERE (r.v ->> 'step')::bigint = {step})"
    )
