"""Names the assets and the rest of the code location share, each with one home: metadata keys and groups."""

TABLE = "lake/table"  # definition metadata: the lake table an asset writes, when not its own name
PARTITION = "lake/partition"  # definition metadata: the partition folder of an unpartitioned asset ("" for none)
LISTING = "listing_fingerprint"  # a model row's: names, sizes and mtimes of the folder's files when it was hashed

# asset groups: the inputs (problems, the base model's and each checkpoint's row), the base's own tables,
# each checkpoint's analysis (one partition per checkpoint), the trend across them, the reports
INPUTS, BASE, ANALYSIS, TREND, REPORT = "inputs", "base", "analysis", "trend", "report"
