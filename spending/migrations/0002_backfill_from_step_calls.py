"""The ledger starts with every paid call already stored (``pipeline.StepCall``), and each
user's spend window with what they spent in the last day, so an upgrade forgets no spend."""

from django.db import migrations

BACKFILL_ENTRIES = """
INSERT INTO spending_spendentry (
    user_id, user_ref, user_email, project_id, project_ref, project_name, run_id, run_ref,
    step_key, role, provider, model, tokens_in, tokens_out, cost_usd, created_at
)
SELECT r.created_by_id, r.created_by_id, COALESCE(u.email, ''), p.id, p.id, p.name, r.id,
    r.id, s.key, s.role, c.provider, c.model, c.tokens_in, c.tokens_out, c.cost_usd,
    c.created_at
FROM pipeline_stepcall AS c
JOIN pipeline_step AS s ON s.id = c.step_id
JOIN pipeline_run AS r ON r.id = s.run_id
JOIN projects_project AS p ON p.id = r.project_id
LEFT JOIN accounts_user AS u ON u.id = r.created_by_id
ORDER BY c.created_at, c.id
"""

BACKFILL_WINDOWS = """
INSERT INTO spending_spendwindow (user_id, buckets, reservations, updated_at)
SELECT user_id, jsonb_object_agg(bucket::text, total), '{}'::jsonb, now()
FROM (
    SELECT e.user_id, floor(extract(epoch FROM e.created_at) / 600)::bigint AS bucket,
        sum(e.cost_usd) AS total
    FROM spending_spendentry AS e
    WHERE e.user_id IS NOT NULL AND e.created_at >= now() - interval '25 hours'
    GROUP BY 1, 2
) AS buckets
GROUP BY user_id
ON CONFLICT (user_id) DO NOTHING
"""


class Migration(migrations.Migration):
    dependencies = [
        ("spending", "0001_spend_ledger_and_window"),
        ("pipeline", "0007_run_request_id"),
    ]

    operations = [
        migrations.RunSQL(BACKFILL_ENTRIES, migrations.RunSQL.noop),
        migrations.RunSQL(BACKFILL_WINDOWS, migrations.RunSQL.noop),
    ]
