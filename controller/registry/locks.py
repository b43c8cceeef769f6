"""PostgreSQL advisory lock keys on the registry database, in one place so no two uses collide.

Several controllers share one registry only on PostgreSQL (docs/scaling.md); on SQLite there is
one controller and these are not taken.
"""

MIGRATION = 0x5370_1001  # one controller migrates the schema at a time (migrations/env.py)
LEADER = 0x5370_1002  # the controller that dispatches and runs the fleet's rounds (leadership.py)
BROKER_FILES = 0x5370_1003  # one writer of the broker's password and ACL files (mqtt_sync.py)
