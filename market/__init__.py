"""Data in: market data sources, bar validation, the Parquet cache, the NYSE calendar and the
universe. ``market`` imports none of the other rooms; every other room may import it."""
