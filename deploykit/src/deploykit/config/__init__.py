"""Configuration: typed environment variables checked against the contract (deploykit.contract)."""
