"""When the assets run: jobs, the checkpoint sensor, the reanalysis schedule, and what they read from the
Dagster instance (`instance`) and the event log (`staleness`). Imports compute/, wiring/ and assets/."""
