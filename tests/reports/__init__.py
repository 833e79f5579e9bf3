"""Tests of the reports package (run folders -> tables and plots)."""
