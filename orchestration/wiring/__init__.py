"""What the assets need from Dagster: partitions, the study resource, the lake IO manager and the metadata
keys. Imports compute/ only; assets/ and everything above import it."""
