"""Everything Dagster, in layers whose imports point one way (README: Developing: the layers):

    wiring/       what the assets need from Dagster: partitions, the study resource, the lake IO manager,
                  metadata keys. Below assets/.
    automation/   jobs, the checkpoint sensor, the reanalysis schedule, staleness, and the one module that
                  asks the Dagster instance what it holds. Above assets/.
    definitions   the code location: imports everything, imported by nothing.
    app/          the command line, the demo, the live demo: they run the code location by its name.
    bench/        benchmarks of the whole product.
"""
