"""The previous release, frozen: its tables and columns, and rows its code wrote.

A rollout runs the previous release's code on the new schema (docs/deployment.md,
"Migrations and rollouts"); tests/test_expand_contract.py checks against this snapshot
that it still can. Regenerate it when a release ships (see ``snapshot.py``).
"""
