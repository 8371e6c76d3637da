"""Email: encrypt mailbox passwords at rest (Fernet, keyed from SECRET_KEY).

Revision ID: fd4aa0c699cb
Revises: ef4a8c43c119
Create Date: 2026-11-23 11:40:00.000000

The columns become TEXT (a Fernet token is about 1.5 times the password, plus
57 bytes) and every stored password is encrypted with the running app's
SECRET_KEY, so run this with the key the app will use. Downgrading decrypts
them again; a password no key decrypts becomes NULL and must be re-entered.

On SQLite the type changes by adding a column, copying and renaming, not by
batch mode: rebuilding ``mailboxes`` would DROP it, and with foreign keys on
that deletes every row of ``email_auto_acknowledgements`` through ON DELETE CASCADE.
"""
from alembic import op
import sqlalchemy as sa
from flask import current_app

from channels.email.passwords import decrypt_with, encrypt_with


# revision identifiers, used by Alembic.
revision = 'fd4aa0c699cb'
down_revision = 'ef4a8c43c119'
branch_labels = None
depends_on = None

COLUMNS = ('imap_password', 'smtp_password')


def _retype(column, new_type, old_type):
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        op.add_column('mailboxes', sa.Column(f'{column}_new', new_type, nullable=True))
        op.execute(f'UPDATE mailboxes SET {column}_new = {column}')
        op.execute(f'ALTER TABLE mailboxes DROP COLUMN {column}')
        op.execute(f'ALTER TABLE mailboxes RENAME COLUMN {column}_new TO {column}')
    else:
        op.alter_column('mailboxes', column, type_=new_type, existing_type=old_type, existing_nullable=True)


def _rewrite(change):
    bind = op.get_bind()
    mailboxes = sa.table('mailboxes', sa.column('id', sa.Integer), *(sa.column(c, sa.Text) for c in COLUMNS))
    rows = bind.execute(sa.select(mailboxes)).all()
    for row in rows:
        values = {c: change(getattr(row, c)) for c in COLUMNS if getattr(row, c) is not None}
        if values:
            bind.execute(mailboxes.update().where(mailboxes.c.id == row.id).values(**values))


def upgrade():
    for column in COLUMNS:
        _retype(column, sa.Text(), sa.String(length=500))
    key = current_app.config['SECRET_KEY']
    _rewrite(lambda password: encrypt_with(key, password))


def downgrade():
    keys = [current_app.config['SECRET_KEY'], *(current_app.config.get('SECRET_KEY_FALLBACKS') or [])]

    def decrypt_or_forget(token):
        try:
            return decrypt_with(keys, token)
        except Exception:
            return None

    _rewrite(decrypt_or_forget)
    for column in COLUMNS:
        _retype(column, sa.String(length=500), sa.Text())
