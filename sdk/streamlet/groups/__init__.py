"""Consumer groups: lease planning (pure), the storage protocol, and one member core.

- :mod:`.leases`: liveness by heartbeat counters, per-topic targets, rebalance plans;
- :mod:`.ops`: :class:`GroupOps`, what a member needs from storage;
- :mod:`.member`: :class:`GroupMember`, the rebalance step, fenced commits and leaving;
- :mod:`.membership`: the SDK consumer's threaded membership around it;
- :mod:`.subscriptions` and :mod:`.instance`: REST Proxy v2 instances, members that keep
  no process.

This package knows no table layout (the engine implements :class:`GroupOps` on
DynamoDB) and imports nothing above the pure model.
"""

from .instance import DEFAULT_SESSION_MS, ConsumerInstance
from .leases import (
    GroupSnapshot,
    Lease,
    LivenessTracker,
    Member,
    Plan,
    plan,
    targets,
    validate_group,
)
from .member import GroupMember
from .ops import GroupOps

__all__ = ["DEFAULT_SESSION_MS", "ConsumerInstance", "GroupMember", "GroupOps",
           "GroupSnapshot", "Lease", "LivenessTracker", "Member", "Plan", "plan", "targets",
           "validate_group"]
