"""calo-polars: audit wallet balances reconstructed from balance-sync Lambda logs."""

__version__ = "0.1.0"
