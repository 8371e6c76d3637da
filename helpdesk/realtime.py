"""Live updates over Socket.IO (placeholder until the inbox is built out)."""
