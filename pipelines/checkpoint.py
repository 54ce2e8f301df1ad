"""What a streaming query's checkpoint says: the query's id, and where a micro-batch ends in a topic.

Reads the files Spark writes under the checkpoint location: `metadata` (the
query id, kept for the checkpoint's life) and the offset log `offsets/<batch>`
("v1", the batch's metadata, then one line per source: its end offsets as
JSON, `{"topic": {"partition": offset}}` for a Kafka source).
"""

from __future__ import annotations

import json
from pathlib import Path


def query_id(checkpoint: Path) -> str:
    """The id of the query that owns `checkpoint` (a new checkpoint is a new query)."""
    return json.loads((Path(checkpoint) / "metadata").read_text())["id"]


def end_offsets(checkpoint: Path, batch_id: int, topic: str) -> dict[int, int] | None:
    """Where batch `batch_id` ends in `topic` ({partition: offset}, exclusive), from the offset log;
    None when the log holds no such batch or no Kafka source reading `topic`."""
    try:
        lines = (Path(checkpoint) / "offsets" / str(batch_id)).read_text().splitlines()
    except OSError:
        return None
    for line in lines[2:]:
        try:
            offsets = json.loads(line).get(topic)
        except (ValueError, AttributeError):  # "-": a source without offsets; not an object: another source
            continue
        if isinstance(offsets, dict):
            return {int(p): int(o) for p, o in offsets.items()}
    return None
