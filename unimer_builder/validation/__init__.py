"""Checking the builder against truth it did not make: real footage annotated by hand, and the media
(fetched from package registries, never committed) that both the real-footage set and the synthetic
generator's identities come from."""
