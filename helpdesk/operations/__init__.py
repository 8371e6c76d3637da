"""Operations: the one write path for each change. Plain functions with an explicit actor.

They flush but never commit; the caller (a view, job or CLI command) commits,
and events recorded with ``events.on_commit`` fire after that.
"""
