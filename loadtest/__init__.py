"""Locust load test of a deployed Saleor shop (see docs/loadtest.md)."""
