"""Emulated AWS for tests and the local run (moto); never imported by the Lambdas."""
