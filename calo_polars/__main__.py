from calo_polars.cli.main import cli

cli()
