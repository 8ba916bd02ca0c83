"""Names the assets and the rest of the code location share, each with one home: metadata keys and groups."""

TABLE = "lake/table"  # definition metadata: the lake table an asset writes, when not its own name
PARTITION = "lake/partition"  # definition metadata: the partition folder of an unpartitioned asset ("" for none)
LISTING = "listing_fingerprint"  # a model row's: names, sizes and mtimes of the folder's files when it was hashed

INPUTS, BASE, CHECKPOINT, TREND, REPORT = "inputs", "base", "checkpoint", "trend", "report"  # asset groups
