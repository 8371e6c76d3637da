"""Sign-in for agents and admins, and the role checks every route goes through."""
