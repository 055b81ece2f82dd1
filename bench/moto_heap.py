"""moto keeps every model instance it ever created; these helpers count and drop them.

``moto.core.common_models.BaseModel.__new__`` appends each instance to its class's
``instances_tracked`` list (for moto's dashboard), and moto's ``transact_write_items``
deep-copies each table a transaction touches (once per action) as a rollback backup.
Every append therefore leaves copies of the whole log table reachable forever, and the
in-process server's gen-2 garbage collections grow with them. Clearing the lists (what
moto's own reset does, without resetting any backend) drops those references.
"""

from __future__ import annotations

import gc


def tracked_instances() -> tuple[int, int]:
    """(DynamoDB Table objects, all model instances) moto currently keeps reachable."""
    from moto.core.model_instances import model_data

    tables = len(getattr(model_data["dynamodb"].get("Table"), "instances_tracked", []))
    total = sum(len(getattr(model, "instances_tracked", []))
                for models in model_data.values() for model in models.values())
    return tables, total


def drop_tracked() -> tuple[int, int]:
    """Clear moto's instance-tracking lists and collect; returns what was tracked."""
    from moto.core.model_instances import reset_model_data

    counts = tracked_instances()
    reset_model_data()
    gc.collect()
    return counts
