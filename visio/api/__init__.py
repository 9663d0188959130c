"""The REST API under /api/v1: parse, call one service, serialise."""
