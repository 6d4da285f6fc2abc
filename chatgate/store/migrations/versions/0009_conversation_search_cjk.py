"""PostgreSQL's full-text index finds Chinese, Japanese and Korean words inside a sentence

Those scripts are written without spaces, so PostgreSQL's parser takes a whole run of them for
one word, and the index of 0002 finds nothing inside a sentence. Each run is now indexed as well
as its overlapping pairs of characters (a bigram index, as search engines do for CJK), with the
run's last character alone, so that a one-character search is a prefix of some entry. A search
looks up the pairs of its own terms in the GIN index and checks the few rows found for the exact
text. SQLite keeps FTS5 (and a scan of one user's rows for these scripts): nothing changes there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Runs of kana, CJK ideographs (with extensions and compatibility forms) and Hangul syllables:
# the characters chatgate.core.conversation_queries looks for by their pairs.
_GRAMS = r"""
CREATE FUNCTION chatgate_cjk_grams(body text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(string_agg(substr(run.chars, i, 2), ' '), '')
  FROM regexp_matches(
         body,
         '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]+',
         'g'
       ) AS found(chars),
       LATERAL (SELECT found.chars[1] AS chars) AS run,
       LATERAL generate_series(1, length(run.chars)) AS i
$$
"""


def _search_column(table: str, expression: str) -> list[str]:
    return [
        f"DROP INDEX IF EXISTS ix_{table}_search",
        f"ALTER TABLE {table} DROP COLUMN IF EXISTS search",
        f"ALTER TABLE {table} ADD COLUMN search tsvector GENERATED ALWAYS AS ({expression}) STORED",
        f"CREATE INDEX ix_{table}_search ON {table} USING gin (search)",
    ]


def _with_grams(source: str) -> str:
    return f"to_tsvector('simple', {source}) || to_tsvector('simple', chatgate_cjk_grams({source}))"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_GRAMS)
    title = "coalesce(title, '')"
    for statement in [
        *_search_column("messages", _with_grams("content")),
        *_search_column("conversations", _with_grams(title)),
    ]:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    title = "coalesce(title, '')"
    for statement in [
        *_search_column("messages", "to_tsvector('simple', content)"),
        *_search_column("conversations", f"to_tsvector('simple', {title})"),
    ]:
        op.execute(statement)
    op.execute("DROP FUNCTION chatgate_cjk_grams(text)")
