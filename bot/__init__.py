"""The product's own library: data, services and NLU parts of the 95598 assistant."""
