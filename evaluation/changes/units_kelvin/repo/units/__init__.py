"""units: unit conversions."""
