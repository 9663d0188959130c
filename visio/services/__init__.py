"""Use cases: each opens its unit of work, loads, applies domain rules, commits."""
