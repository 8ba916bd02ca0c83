"""The application: `shiftlake` (cli), the demo, the live demo, the study's plan and status. It runs the code
location by its module name (`location`), as `dagster dev -m` does, and never imports it."""
