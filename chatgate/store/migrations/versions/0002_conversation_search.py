"""full-text search over conversation titles and message content

SQLite: FTS5 tables that mirror ``messages.content`` and ``conversations.title`` (external
content, kept in step by triggers). PostgreSQL: generated ``tsvector`` columns with GIN indexes.
Both use a language-neutral tokenizer, as conversations are in any language. A keyset index
serves the newest-first listing.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_UP = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5("
    "content, content='messages', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content); END",
    "CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) "
    "VALUES ('delete', old.rowid, old.content); END",
    "CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) "
    "VALUES ('delete', old.rowid, old.content); "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content); END",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
    "CREATE VIRTUAL TABLE conversations_fts USING fts5("
    "title, content='conversations', content_rowid='rowid', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER conversations_fts_ai AFTER INSERT ON conversations BEGIN "
    "INSERT INTO conversations_fts(rowid, title) VALUES (new.rowid, coalesce(new.title, '')); END",
    "CREATE TRIGGER conversations_fts_ad AFTER DELETE ON conversations BEGIN "
    "INSERT INTO conversations_fts(conversations_fts, rowid, title) "
    "VALUES ('delete', old.rowid, coalesce(old.title, '')); END",
    "CREATE TRIGGER conversations_fts_au AFTER UPDATE OF title ON conversations BEGIN "
    "INSERT INTO conversations_fts(conversations_fts, rowid, title) "
    "VALUES ('delete', old.rowid, coalesce(old.title, '')); "
    "INSERT INTO conversations_fts(rowid, title) VALUES (new.rowid, coalesce(new.title, '')); END",
    "INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')",
]

_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS conversations_fts_au",
    "DROP TRIGGER IF EXISTS conversations_fts_ad",
    "DROP TRIGGER IF EXISTS conversations_fts_ai",
    "DROP TABLE IF EXISTS conversations_fts",
    "DROP TRIGGER IF EXISTS messages_fts_au",
    "DROP TRIGGER IF EXISTS messages_fts_ad",
    "DROP TRIGGER IF EXISTS messages_fts_ai",
    "DROP TABLE IF EXISTS messages_fts",
]

_POSTGRES_UP = [
    "ALTER TABLE messages ADD COLUMN search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED",
    "CREATE INDEX ix_messages_search ON messages USING gin (search)",
    "ALTER TABLE conversations ADD COLUMN search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', coalesce(title, ''))) STORED",
    "CREATE INDEX ix_conversations_search ON conversations USING gin (search)",
]

_POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_conversations_search",
    "ALTER TABLE conversations DROP COLUMN IF EXISTS search",
    "DROP INDEX IF EXISTS ix_messages_search",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_UP if dialect == "sqlite" else _POSTGRES_UP:
        op.execute(statement)
    op.create_index(
        "ix_conversations_user_updated_id", "conversations", ["user_id", "updated_at", "id"]
    )
    op.drop_index("ix_conversations_user_updated", table_name="conversations")


def downgrade() -> None:
    op.create_index("ix_conversations_user_updated", "conversations", ["user_id", "updated_at"])
    op.drop_index("ix_conversations_user_updated_id", table_name="conversations")
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_DOWN if dialect == "sqlite" else _POSTGRES_DOWN:
        op.execute(statement)
